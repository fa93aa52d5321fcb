"""Benchmark: ``python -m fmlib`` against libFM itself, same files, same flags.

MovieLens 100k fold u1 written as libFM files (user and item one-hot: 943 + 1,682 = 2,625
columns; the test file uses the same columns), then for each of libFM's methods (sgd,
sgda, als, mcmc) three settings: libFM's defaults and two others. Both programs run as
separate processes on the same files with the same flags; every run is repeated over a
few seeds (libFM's ``-seed`` and fmlib's draw different initial values, so single runs
differ by the spread over seeds). Reported per setting: the test RMSE of the ``-out``
predictions (mean and range over seeds) for both and their difference, the wall time
from process start to the prediction file written (median over seeds) and the process's
CPU time (user + system, median over seeds: on a machine shared with other work the
less disturbed of the two). sgda learns its
regularisation on every 10th row of u1.base (``-validation``), trained on the other rows.
TensorFlow's import time is measured on its own (libFM's methods do not import it).

``--design side`` and ``--design implicit`` run the issue's two other designs, one setting
per method, into benchmarks/results/libfm_designs.json: side features (the user's age
decade, gender and occupation, the item's genres) in the libFM files with ``-meta`` groups
user, item, user side, genre; and implicit feedback (SVD++'s: the items a user rated in
u1.base, each 1/sqrt(count)) as libFM's ``-relation`` block of the users, the main file
holding the item one-hot (als and mcmc only: libFM refuses relations with sgd and sgda).

Targets (issue 29): |RMSE difference| <= 0.003 for als and mcmc, <= 0.01 for sgd and sgda;
fmlib's time <= 2x libFM's.

    LIBFM=/path/to/libFM python benchmarks/bench_libfm.py [--seeds 1,2,3]
    LIBFM=/path/to/libFM python benchmarks/bench_libfm.py --design side --seeds 1
    LIBFM=/path/to/libFM python benchmarks/bench_libfm.py --design implicit --seeds 1
    python benchmarks/bench_libfm.py --smoke      # seconds: fmlib only, 2,000 ratings,
                                                  # 3 iterations, one setting per method

Without ``LIBFM`` only fmlib runs (its columns are filled, libFM's are null). libFM is
built from github.com/srendle/libfm with ``make`` (``bin/libFM``). Writes
benchmarks/results/libfm.json (``--smoke``: a temporary file, or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = common.ROOT
OUT = common.RESULTS / "libfm.json"
OUT_DESIGNS = common.RESULTS / "libfm_designs.json"  # --design side / implicit
DATA = Path(os.environ.get("FMLIB_DATA", ROOT / "data")) / "ml-100k"
N_USERS, N_ITEMS = 943, 1682

# (method, label, flags): libFM's defaults (sgd and sgda need -learn_rate: libFM aborts
# without it) and two other settings each; als and mcmc at 200 iterations.
SETTINGS = [
    ("sgd", "defaults, -learn_rate 0.01", "-learn_rate 0.01"),
    (
        "sgd",
        "30 iter, -regular 0,0,0.01",
        "-learn_rate 0.01 -regular 0,0,0.01 -iter 30",
    ),
    (
        "sgd",
        "k=16, -regular 0,0.01,0.05",
        "-learn_rate 0.005 -regular 0,0.01,0.05 -dim 1,1,16 -iter 50",
    ),
    ("sgda", "defaults, -learn_rate 0.01", "-learn_rate 0.01"),
    ("sgda", "30 iter", "-learn_rate 0.01 -iter 30"),
    (
        "sgda",
        "k=16, -learn_rate 0.005, -meta",
        "-learn_rate 0.005 -dim 1,1,16 -iter 50 -meta {meta}",
    ),
    ("als", "defaults (-regular 0), 200 iter", "-iter 200"),
    ("als", "-regular 0,10,10", "-regular 0,10,10 -iter 200"),
    (
        "als",
        "-meta, -regular 0,5,5,15,15",
        "-meta {meta} -regular 0,5,5,15,15 -iter 200",
    ),
    ("mcmc", "defaults, 200 iter", "-iter 200"),
    ("mcmc", "k=10", "-dim 1,1,10 -iter 200"),
    ("mcmc", "-meta, -init_stdev 0.05", "-meta {meta} -init_stdev 0.05 -iter 200"),
]


# The two other designs of issue 29, one setting per method (libFM refuses -relation with
# sgd and sgda): side features grouped by -meta, and implicit feedback as a relation.
DESIGN_SETTINGS = {
    "side": [
        ("sgd", "side, -regular 0,0,0.01, 30 iter", "-learn_rate 0.01 -regular 0,0,0.01 -iter 30"),
        ("sgda", "side, -meta, 30 iter", "-learn_rate 0.01 -iter 30 -meta {meta}"),
        ("als", "side, -meta, -regular 0,10,10", "-meta {meta} -regular 0,10,10 -iter 200"),
        ("mcmc", "side, -meta, 200 iter", "-meta {meta} -iter 200"),
    ],
    "implicit": [
        ("als", "implicit, -relation, -regular 0,10,10", "-relation {relation} -regular 0,10,10 -iter 200"),
        ("als", "implicit, -relation, k=16, -regular 0,20,20", "-relation {relation} -dim 1,1,16 -regular 0,20,20 -iter 200"),
        ("mcmc", "implicit, -relation, 200 iter", "-relation {relation} -iter 200"),
        ("mcmc", "implicit, -relation, k=16, 200 iter", "-relation {relation} -dim 1,1,16 -iter 200"),
    ],
}  # fmt: skip
DESIGN_TEXT = {
    "onehot": "user + item one-hot (2,625 columns)",
    "side": "user + item one-hot, the user's age decade, gender and occupation, the "
    "item's genres (2,625 + 8 + 2 + 21 + 19 columns); -meta: user, item, user side, genre",
    "implicit": "item one-hot in the main file; -relation user: the user one-hot and the "
    "items the user rated in u1.base, each 1/sqrt(count) (SVD++'s implicit feedback), "
    "groups user id and implicit items",
}


def _side_columns() -> tuple[dict, dict]:
    """Side features (column offsets from 0) of every user and item, from u.user, u.item."""
    occupations = (DATA / "u.occupation").read_text().split()
    users = {}
    for line in (DATA / "u.user").read_text().splitlines():
        uid, age, gender, occ = line.split("|")[:4]
        decade = min(int(age) // 10, 7)
        users[int(uid)] = [decade, 8 + (gender == "F"), 10 + occupations.index(occ)]
    items = {}
    for line in (DATA / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        items[int(fields[0])] = [
            31 + g for g, flag in enumerate(fields[-19:]) if flag == "1"
        ]
    return users, items


def _lines(ratings: np.ndarray, design: str, side) -> list[str]:
    if design == "implicit":
        return [f"{r} {i - 1}:1" for u, i, r in ratings]
    lines = [f"{r} {u - 1}:1 {N_USERS + i - 1}:1" for u, i, r in ratings]
    if design == "side":
        users, items = side
        base = N_USERS + N_ITEMS
        lines = [
            line + "".join(f" {base + c}:1" for c in users[u] + items[i])
            for line, (u, i, _) in zip(lines, ratings)
        ]
    return lines


def write_files(folder: Path, smoke: bool, design: str = "onehot") -> dict[str, Path]:
    """u1.base / u1.test as libFM files of ``design``, the sgda split, the -meta groups
    file and (implicit) the relation files."""
    files = {}
    side = _side_columns() if design == "side" else None
    parts = {}
    for part in ("base", "test"):
        ratings = np.loadtxt(DATA / f"u1.{part}", dtype=np.int64)[:, :3]
        if smoke:
            ratings = ratings[: 2000 if part == "base" else 500]
        parts[part] = ratings
        lines = _lines(ratings, design, side)
        files[part] = folder / f"u1.{part}.libfm"
        files[part].write_text("\n".join(lines) + "\n")
        if part == "base":
            files["fit"] = folder / "u1.fit.libfm"
            files["fit"].write_text(
                "\n".join(l for j, l in enumerate(lines) if j % 10) + "\n"
            )
            files["validation"] = folder / "u1.val.libfm"
            files["validation"].write_text("\n".join(lines[::10]) + "\n")
    groups = ["0"] * N_USERS + ["1"] * N_ITEMS
    if design == "side":
        groups += ["2"] * 31 + ["3"] * 19
    files["meta"] = folder / "groups.txt"
    files["meta"].write_text("\n".join(groups) + "\n")
    if design == "implicit":
        files["relation"] = _write_relation(folder / "user", parts)
    return files


def _write_relation(prefix: Path, parts: dict) -> Path:
    """libFM's -relation files of the users: row u = user one-hot, then the items rated in
    u1.base at 1/sqrt(count); .train/.test map every rating to its user's row."""
    import scipy.sparse as sp

    from fmlib.interop.libfm_relations import save_libfm_relation

    base = parts["base"]
    rated = sp.csr_matrix(
        (np.ones(len(base)), (base[:, 0] - 1, base[:, 1] - 1)), shape=(N_USERS, N_ITEMS)
    )
    counts = np.maximum(np.asarray(rated.sum(axis=1)).ravel(), 1)
    implicit = sp.diags(1 / np.sqrt(counts)) @ rated
    B = sp.hstack([sp.identity(N_USERS), implicit]).tocsr()
    save_libfm_relation(
        prefix,
        B,
        parts["base"][:, 0] - 1,
        parts["test"][:, 0] - 1,
        groups=[0] * N_USERS + [1] * N_ITEMS,
    )
    return prefix


def command(program: list[str], method: str, flags: str, files, seed: int, out: Path):
    train = files["fit"] if method == "sgda" else files["base"]
    cmd = program + [
        "-task",
        "r",
        "-train",
        str(train),
        "-test",
        str(files["test"]),
        "-method",
        method,
        "-seed",
        str(seed),
        "-out",
        str(out),
    ]
    if method == "sgda":
        cmd += ["-validation", str(files["validation"])]
    return (
        cmd + flags.format(meta=files["meta"], relation=files.get("relation")).split()
    )


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], out: Path, y_test: np.ndarray) -> dict:
    start, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    cpu_seconds = _children_cpu() - cpu
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}"
            f"\n{done.stderr[-2000:]}"
        )
    pred = np.loadtxt(out)
    out.unlink()
    iters = [l for l in done.stdout.splitlines() if l.startswith("#Iter=")]
    printed = float(iters[-1].split("Test=")[1].split()[0]) if iters else None
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rmse": float(np.sqrt(np.mean((pred - y_test) ** 2))),
        "printed_test": printed,
    }


def summarise(runs: list[dict]) -> dict:
    rmse = [r["rmse"] for r in runs]
    return {
        "rmse_mean": statistics.mean(rmse),
        "rmse_min": min(rmse),
        "rmse_max": max(rmse),
        "printed_test_mean": statistics.mean(r["printed_test"] for r in runs),
        "seconds_median": statistics.median(r["seconds"] for r in runs),
        "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in runs),
        "runs": runs,
    }


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return float(
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.split()[-1]
    )


def libfm_version(libfm: str | None) -> dict | None:
    """The libFM binary compared against: its path and the version it prints."""
    if not libfm:
        return None
    head = subprocess.run([libfm, "-help"], capture_output=True, text=True).stdout
    version = next(
        (l.split(":")[1].strip() for l in head.splitlines() if "Version" in l), None
    )
    return {"path": libfm, "version": version}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", default="1,2,3", help="seeds of every run (default 1,2,3)"
    )
    parser.add_argument("--only", default="", help="comma-separated methods to run")
    parser.add_argument(
        "--design",
        default="onehot",
        choices=("onehot", "side", "implicit"),
        help="onehot (user + item: libfm.json), side (-meta side features) or "
        "implicit (-relation): libfm_designs.json, one part each",
    )
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args(argv)
    record = common.provenance(
        ["benchmarks/bench_libfm.py", *(sys.argv[1:] if argv is None else argv)],
        smoke=args.smoke,
    )
    out = common.results_path(args, OUT if args.design == "onehot" else OUT_DESIGNS)
    seeds = [int(s) for s in args.seeds.split(",")]
    libfm = None if args.smoke else os.environ.get("LIBFM") or None
    if libfm and not os.access(libfm, os.X_OK):
        parser.error(f"LIBFM={libfm!r} is not an executable file.")
    table = SETTINGS if args.design == "onehot" else DESIGN_SETTINGS[args.design]
    settings = [s for s in table if not args.only or s[0] in args.only.split(",")]
    if (
        args.smoke
    ):  # one setting per method (the -meta ones: the most code), 3 iterations
        seeds = seeds[:1]
        chosen = {}
        for m, label, flags in settings:
            if m not in chosen or "-meta" in label:
                chosen[m] = (m, label, " ".join(_smoke_flags(flags)))
        settings = list(chosen.values())
    env_python = [sys.executable, "-m", "fmlib"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_files(folder, args.smoke, args.design)
        y_test = np.array(
            [float(l.split()[0]) for l in files["test"].read_text().splitlines()]
        )
        # one untimed run compiles and caches fmlib's loops (numba's on-disk cache)
        subprocess.run(
            command(
                env_python,
                "sgda",
                "-iter 2 -learn_rate 0.01 -dim 1,1,2",
                files,
                0,
                folder / "warm.txt",
            ),
            capture_output=True,
        )
        warm = "-iter 2 -dim 1,1,2"
        if args.design == "implicit":  # the relation kernels are others: warm them too
            warm += " -relation {relation}"
        subprocess.run(
            command(env_python, "mcmc", warm, files, 0, folder / "warm.txt"),
            capture_output=True,
        )
        for method, label, flags in settings:
            row = {
                "method": method,
                "setting": label,
                "flags": flags.format(meta="groups.txt", relation="user"),
            }
            for name, program in (
                ("fmlib", env_python),
                ("libfm", [libfm] if libfm else None),
            ):
                if program is None:
                    row[name] = None
                    continue
                runs = [
                    run(
                        command(
                            program, method, flags, files, s, folder / f"{name}.txt"
                        ),
                        folder / f"{name}.txt",
                        y_test,
                    )
                    for s in seeds
                ]
                row[name] = summarise(runs)
            if row["libfm"]:
                row["rmse_diff"] = row["fmlib"]["rmse_mean"] - row["libfm"]["rmse_mean"]
                row["time_ratio"] = (
                    row["fmlib"]["seconds_median"] / row["libfm"]["seconds_median"]
                )
                # CPU time (user + system): less sensitive to other work on the machine
                row["cpu_ratio"] = (
                    row["fmlib"]["cpu_seconds_median"]
                    / row["libfm"]["cpu_seconds_median"]
                )
                row["target_rmse"] = 0.003 if method in ("als", "mcmc") else 0.01
                row["rmse_met"] = abs(row["rmse_diff"]) <= row["target_rmse"]
                row["time_met"] = row["time_ratio"] <= 2.0
            rows.append(row)
            print(_row_text(row), flush=True)
    data = f"MovieLens 100k u1.base / u1.test, {DESIGN_TEXT[args.design]}" + (
        " (smoke: first 2,000 / 500 ratings)" if args.smoke else ""
    )
    if args.design != "onehot":  # libfm_designs.json, one part per design
        part = {"data": data, "seeds": seeds, "rows": rows}

        def change(results: dict) -> dict:
            results.setdefault("designs", {})[args.design] = part
            results["libfm"] = libfm_version(libfm) or results.get("libfm")
            return results

        return common.update_results(out, change, record, part=args.design)
    result = {
        "libfm": libfm_version(libfm),
        "data": data,
        "seeds": seeds,
        "import_seconds": None
        if args.smoke
        else {
            "tensorflow": import_seconds("tensorflow"),
            "fmlib.solvers.libfm (numba)": import_seconds("fmlib.solvers.libfm"),
        },
        "rows": rows,
    }
    common.save_results(out, result, record, replace=True)
    return result


def _smoke_flags(flags: str) -> list[str]:
    """The setting's flags with -iter 3."""
    tokens = flags.split()
    if "-iter" in tokens:
        tokens[tokens.index("-iter") + 1] = "3"
    else:
        tokens += ["-iter", "3"]
    return tokens


def _row_text(row: dict) -> str:
    f, l = row["fmlib"], row["libfm"]
    text = (
        f"{row['method']:5s} {row['setting']:36s} fmlib RMSE {f['rmse_mean']:.4f} "
        f"[{f['rmse_min']:.4f}, {f['rmse_max']:.4f}] {f['seconds_median']:.2f} s"
    )
    if l:
        text += (
            f" | libFM {l['rmse_mean']:.4f} [{l['rmse_min']:.4f}, {l['rmse_max']:.4f}] "
            f"{l['seconds_median']:.2f} s | diff {row['rmse_diff']:+.4f} "
            f"time x{row['time_ratio']:.2f} (CPU x{row['cpu_ratio']:.2f})"
        )
    return text


if __name__ == "__main__":
    main()
