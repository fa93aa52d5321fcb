"""Benchmark: mean-field variational inference, fmlib against myFM, on MovieLens u1.

MovieLens 100k, fold u1, the flat user + item one-hot design (the design of myFM's
``ml-100k-variational.py`` with ``--feature mf``), rank 10, one prior group per
one-hot block. ``fmlib.VariationalFM`` (coordinate ascent, compiled column loops) and
myFM 0.4.0's ``VariationalFMRegressor`` (compiled C++), same number of iterations, in one
process; test RMSE (not clipped), wall and CPU seconds of the fit, and fmlib's ELBO per
iteration (it must not decrease).

With ``--design myfm``: myFM's MovieLens protocol (``fmlib.myfm_movielens_design``, the
design of ``bench_ordinal.py``), which both libraries train on as relation blocks (fmlib
through ``fmlib.solvers.variational_blocks``, without flattening), one prior group per
encoded column; the results go under the key ``"myfm_design"`` of the same file, the
user + item results stay as they are. With ``--design mf`` both libraries also fit the
same one-hot matrix written as two relation blocks (an identity block of the users and
one of the items, one block row per user or item), under the key ``"blocks"``.

    python benchmarks/bench_variational.py [--iters 50] [--design mf|myfm] [--out PATH]
    python benchmarks/bench_variational.py --smoke      # seconds: 2 iterations, 4000 ratings

Writes benchmarks/results/variational.json (with the provenance block of
``benchmarks/common.py``) and prints a table; ``--smoke`` writes to a temporary file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TQDM_DISABLE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import fmlib  # noqa: E402

OUT = common.RESULTS / "variational.json"
RANK = 10
rmse = common.rmse


def mf_design(ml, train, test):
    """The flat user + item one-hot matrices, their groups and group sizes."""
    users, items = ml.users["user"].to_numpy(), ml.items["item"].to_numpy()

    def one_hot(frame):
        u = np.searchsorted(users, frame["user"].to_numpy())
        i = np.searchsorted(items, frame["item"].to_numpy())
        rows = np.repeat(np.arange(len(frame)), 2)
        cols = np.stack([u, users.size + i], 1).ravel()
        return sp.csr_matrix(
            (np.ones(rows.size), (rows, cols)),
            shape=(len(frame), users.size + items.size),
        )

    X, X_test = one_hot(train), one_hot(test)
    groups = {"user": slice(0, users.size), "item": slice(users.size, X.shape[1])}
    return X, X_test, groups


def as_blocks(X, n_users):
    """The user + item one-hot ``X`` as relation blocks: identity blocks indexed by
    every rating's user and item (``to_csr()`` gives ``X`` back)."""
    user, item = X[:, :n_users].tocsr(), X[:, n_users:].tocsr()
    return fmlib.RelationalDesign(
        None,
        [
            fmlib.RelationBlock(
                sp.identity(n_users, format="csr"), user.indices, "user"
            ),
            fmlib.RelationBlock(
                sp.identity(X.shape[1] - n_users, format="csr"), item.indices, "item"
            ),
        ],
    )


def myfm_inputs(X):
    """myFM's arguments for a design: the main block and the relation blocks."""
    if not isinstance(X, fmlib.RelationalDesign):
        return X, []
    blocks = [
        myfm.RelationBlock(b.index.astype(np.int64), sp.csr_matrix(b.data))
        for b in X.blocks
    ]
    return sp.csr_matrix(X.X), blocks


myfm = None  # the peer library, imported in main()


def compare(X, X_test, y, y_test, groups, shapes, args, label: str) -> dict:
    """fmlib's and myFM's fit of one design, timed in this process: RMSE, wall and CPU
    seconds, fmlib's ELBO; printed under ``label``."""
    print(label)
    result = {}
    # warm-up, not timed: numba compiles (or loads) the coordinate-ascent kernels
    fmlib.VariationalFM(k=RANK, num_iter=1, groups=groups).fit(X[:200], y[:200])
    with common.Timer() as t:
        vfm = fmlib.VariationalFM(
            k=RANK, num_iter=args.iters, groups=groups, seed=args.seed
        )
        vfm.fit(X, y)
    elbo = vfm.trace_["elbo"].to_numpy()
    result["fmlib"] = {
        "rmse": rmse(vfm.predict(X_test), y_test),
        "seconds_fit": t.seconds,
        "cpu_seconds_fit": t.cpu_seconds,
        "elbo_first_last": [float(elbo[0]), float(elbo[-1])],
        "elbo_non_decreasing": bool(np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[1:]))),
    }
    if myfm is not None:
        main_block, blocks = myfm_inputs(X)
        with common.Timer() as t:
            fm = myfm.VariationalFMRegressor(rank=RANK, random_seed=args.seed)
            fm.fit(main_block, y, X_rel=blocks, n_iter=args.iters, group_shapes=shapes)
        result["myfm"] = {
            "rmse": rmse(fm.predict(*myfm_inputs(X_test)), y_test),
            "seconds_fit": t.seconds,
            "cpu_seconds_fit": t.cpu_seconds,
        }
        result["time_ratio_fmlib_over_myfm"] = (
            result["fmlib"]["seconds_fit"] / result["myfm"]["seconds_fit"]
        )
        result["cpu_time_ratio_fmlib_over_myfm"] = (
            result["fmlib"]["cpu_seconds_fit"] / result["myfm"]["cpu_seconds_fit"]
        )
    for lib in [k for k in ("fmlib", "myfm") if k in result]:
        r = result[lib]
        print(
            f"{lib:6s} RMSE {r['rmse']:.4f}  fit {r['seconds_fit']:7.2f} s, "
            f"CPU {r['cpu_seconds_fit']:7.2f} s"
        )
    print(
        f"fmlib ELBO {elbo[0]:.1f} -> {elbo[-1]:.1f}, non-decreasing: "
        f"{result['fmlib']['elbo_non_decreasing']}"
    )
    return result


def main() -> None:
    global myfm
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--design", choices=("mf", "myfm"), default="mf")
    common.add_smoke_arguments(parser, OUT)
    args = parser.parse_args()
    record = common.provenance(smoke=args.smoke)
    out_path = common.results_path(args, OUT)
    myfm = common.peer("myfm", args.smoke)
    if args.smoke:
        args.iters = 2
    ml = common.movielens()
    train, test = common.fold_frames(ml, "u1", side=False, smoke=args.smoke)
    y, y_test = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    if args.design == "mf":
        X, X_test, groups = mf_design(ml, train, test)
        name = "user + item one-hot"
    else:
        X, X_test = fmlib.myfm_movielens_design(ml, train, test)
        groups = X.groups
        name = "fmlib.myfm_movielens_design (myFM's ml-100k-extended)"
    shapes = [g.stop - g.start for g in groups.values()]
    result = {
        "protocol": {
            "fold": "u1",
            "design": name,
            "rank": RANK,
            "iterations": args.iters,
            "seed": args.seed,
            "clipped": False,
            "columns": X.shape[1],
        }
    }
    if isinstance(X, fmlib.RelationalDesign):
        result["protocol"]["nonzeros_stored"] = int(X.nnz)
        result["protocol"]["nonzeros_flat"] = int(X.flat_nnz)
    encoding = "relation blocks" if isinstance(X, fmlib.RelationalDesign) else "flat"
    result.update(compare(X, X_test, y, y_test, groups, shapes, args, encoding))
    if args.design == "mf":
        n_users = groups["user"].stop
        blocks = as_blocks(X, n_users), as_blocks(X_test, n_users)
        result["blocks"] = compare(
            *blocks, y, y_test, groups, shapes, args, "relation blocks"
        )
        common.save_results(out_path, result, record, part="mf")
    else:
        common.save_results(out_path, {"myfm_design": result}, record, part="myfm")


if __name__ == "__main__":
    main()
