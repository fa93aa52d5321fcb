"""fmlib.interop.libfm_relations: libFM's BS relation files against the flat matrix."""

import struct

import numpy as np
import pytest

from fmlib.interop import libfm_relations as R
from fmlib.solvers.libfm import Rows


def _dense(rows: Rows) -> np.ndarray:
    out = np.zeros((rows.n_rows, rows.n_cols))
    for i in range(rows.n_rows):
        a, b = rows.indptr[i], rows.indptr[i + 1]
        out[i, rows.indices[a:b]] = rows.data[a:b]
    return out


def test_binary_matrix_layout_by_hand(tmp_path):
    """Bytes written by hand as libFM's fmatrix.h lays them out."""
    path = tmp_path / "rel.x"
    body = struct.pack("<IIQII", 2, 4, 3, 2, 5)  # id, float size, nnz, rows, cols
    body += (
        struct.pack("<I", 2) + struct.pack("<If", 0, 1.0) + struct.pack("<If", 4, 0.5)
    )
    body += struct.pack("<I", 1) + struct.pack("<If", 2, -2.0)
    path.write_bytes(body)
    np.testing.assert_array_equal(
        _dense(R.read_libfm_matrix(path)), [[1, 0, 0, 0, 0.5], [0, 0, -2, 0, 0]]
    )
    R.write_libfm_matrix(tmp_path / "again.x", R.read_libfm_matrix(path))
    assert (tmp_path / "again.x").read_bytes() == body


def test_truncated_binary_matrix_is_an_error(tmp_path):
    path = tmp_path / "rel.x"
    path.write_bytes(struct.pack("<IIQII", 2, 4, 3, 2, 5) + struct.pack("<I", 2))
    with pytest.raises(ValueError, match="rel.x: the header says 2 rows and 3 values"):
        R.read_libfm_matrix(path)


def test_relational_files_stand_for_the_flat_matrix(tmp_path):
    rng = np.random.default_rng(0)
    main = rng.integers(0, 2, (6, 3)).astype(float)
    user = np.round(rng.random((3, 4)) * (rng.random((3, 4)) < 0.6), 3)
    genre = np.eye(2)
    u_idx, g_idx = np.array([0, 2, 2, 1, 0, 1]), np.array([1, 0, 0, 1, 1, 0])
    lines = [
        f"{i + 1} " + " ".join(f"{j}:{v:g}" for j, v in enumerate(row) if v)
        for i, row in enumerate(main)
    ]
    (tmp_path / "train.libfm").write_text("\n".join(lines) + "\n")
    R.save_libfm_relation(tmp_path / "user", user, u_idx, groups=[0, 0, 1, 1])
    R.save_libfm_relation(tmp_path / "genre", genre, g_idx)
    design, y = R.load_libfm_relational(
        tmp_path / "train.libfm", [tmp_path / "user", tmp_path / "genre"], n_features=4
    )
    flat = np.hstack([main, np.zeros((6, 1)), user[u_idx], genre[g_idx]])
    np.testing.assert_allclose(
        design.to_csr().toarray(), flat, rtol=1e-6
    )  # float32 in .x
    np.testing.assert_array_equal(y, np.arange(1, 7))
    assert design.groups["user"] == slice(4, 8) and design.groups["genre"] == slice(
        8, 10
    )
    # the numpy-only flattening the command line uses gives the same matrix
    rel = R.Relation(tmp_path / "user")
    np.testing.assert_array_equal(rel.groups, [0, 0, 1, 1])
    parts = [
        R.read_libfm_text(tmp_path / "train.libfm")[0]._replace(n_cols=4),
        R.take_rows(rel.B, rel.index("train", 6)),
        R.take_rows(R.Relation(tmp_path / "genre").B, g_idx),
    ]
    np.testing.assert_allclose(_dense(R.hstack_rows(parts)), flat, rtol=1e-6)


def test_row_map_errors_name_the_file(tmp_path):
    (tmp_path / "rel.train").write_text("0\n5\n")
    with pytest.raises(
        ValueError,
        match=r"rel.train: block rows must be in 0..2; got values from 0 to 5",
    ):
        R.read_row_map(tmp_path / "rel.train", 2, 3)
    with pytest.raises(
        ValueError, match=r"rel.train: expected one block row per data row, 3; got 2"
    ):
        R.read_row_map(tmp_path / "rel.train", 3, 9)
    with pytest.raises(FileNotFoundError, match="no relation row map"):
        R.read_row_map(tmp_path / "rel.test", 3, 9)


def test_binary_row_map(tmp_path):
    path = tmp_path / "rel.train"
    path.write_bytes(struct.pack("<III", 1, 4, 3) + struct.pack("<3I", 2, 0, 1))
    np.testing.assert_array_equal(R.read_row_map(path, 3, 3), [2, 0, 1])
