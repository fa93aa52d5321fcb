"""benchmarks/bench_libfm.py's two other designs: the files both programs read stand for the
matrices the benchmark says (references: MovieLens' own files, read here by hand)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_libfm as B  # noqa: E402

from fmlib.interop.libfm_files import load_libfm  # noqa: E402
from fmlib.interop.libfm_relations import load_libfm_relational  # noqa: E402


def _ratings(part, n):
    return np.loadtxt(B.DATA / f"u1.{part}", dtype=np.int64)[:n, :3]


def test_implicit_relation_is_the_users_rated_items(tmp_path):
    files = B.write_files(tmp_path, smoke=True, design="implicit")
    design, y = load_libfm_relational(files["base"], [files["relation"]], "train", 1682)
    flat = design.to_csr().toarray()
    base = _ratings("base", 2000)
    np.testing.assert_array_equal(y, base[:, 2])
    for row in (0, 17, 1999):
        u, i = base[row, 0], base[row, 1]
        rated = base[base[:, 0] == u, 1]  # the smoke files: the first 2,000 ratings
        expected = np.zeros(1682 + 943 + 1682)
        expected[i - 1] = 1.0
        expected[1682 + u - 1] = 1.0
        expected[1682 + 943 + rated - 1] = 1 / np.sqrt(len(rated))
        np.testing.assert_allclose(flat[row], expected, rtol=1e-6)
    test, _ = load_libfm_relational(files["test"], [files["relation"]], "test", 1682)
    first = _ratings("test", 1)[0]
    assert test.to_csr()[0, 1682 + first[0] - 1] == 1.0


def test_side_features_follow_movielens(tmp_path):
    files = B.write_files(tmp_path, smoke=True, design="side")
    X, y = load_libfm(files["base"])
    base = _ratings("base", 2000)
    user = (B.DATA / "u.user").read_text().splitlines()[base[0, 0] - 1].split("|")
    item = (
        (B.DATA / "u.item").read_text(encoding="latin-1").splitlines()[base[0, 1] - 1]
    ).split("|")
    occupations = (B.DATA / "u.occupation").read_text().split()
    start = 943 + 1682
    expected = {base[0, 0] - 1, 943 + base[0, 1] - 1}
    expected |= {start + min(int(user[1]) // 10, 7), start + 8 + (user[2] == "F")}
    expected |= {start + 10 + occupations.index(user[3])}
    expected |= {start + 31 + g for g, flag in enumerate(item[-19:]) if flag == "1"}
    assert set(X[0].indices) == expected
    groups = np.loadtxt(files["meta"], dtype=int)
    assert groups.size == start + 50 and set(groups[start:]) == {2, 3}
    assert X.shape[1] <= groups.size
