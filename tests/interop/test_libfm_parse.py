"""fmlib.interop.libfm_parse: the compiled reader gives float()'s values, or gives up."""

import numpy as np
import pytest

from fmlib.interop import libfm_parse
from fmlib.interop.libfm_files import load_libfm, read_libfm_text


def test_numbers_are_exactly_pythons(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.uniform(-10, 10, 3000) * 10.0 ** rng.integers(
        -6, 8, 3000
    )  # the fast range
    texts = [f"{v:.{d}g}" for v, d in zip(values, rng.integers(1, 16, 3000))]
    texts += [
        "0",
        "-0.0",
        "+3",
        "7.",
        ".25",
        "1e5",
        "2.5E-3",
        "-1.5e+2",
        "000012",
        "0.000",
    ]
    lines = [f"{t} 0:{t} 5:1" for t in texts]
    path = tmp_path / "a.libfm"
    path.write_text("\n".join(lines))  # no newline at the end, on purpose
    got = libfm_parse.read(str(path))
    assert got is not None
    targets, indptr, indices, values = got
    expected = np.array([float(t) for t in texts])
    np.testing.assert_array_equal(targets, expected)
    np.testing.assert_array_equal(values[0::2], expected)
    np.testing.assert_array_equal(indices, np.tile([0, 5], len(texts)))
    np.testing.assert_array_equal(indptr, 2 * np.arange(len(texts) + 1))


@pytest.mark.parametrize(
    "text",
    [
        "1 0:1\n\n2 1:1\n",
        "1 0:1 # comment\n",
        "1 0:x\n",
        "1 0:1e400\n",
        "1 a:1\n",
        "1 0:0.12345678901234567\n",
        "1 0:1:2\n",
        "nan 0:1\n",
    ],
)
def test_anything_else_gives_up(tmp_path, text):
    path = tmp_path / "b.libfm"
    path.write_text(text)
    assert libfm_parse.read(str(path)) is None


def test_read_libfm_text_equals_load_libfm_on_both_paths(tmp_path):
    lines = ["5 0:1 943:1 2625:0.333", "3 1:1 944:1", "1.5 2:0.5 7:1e-3"]
    for suffix, extra in (("fast", ""), ("slow", "  # a comment")):
        path = tmp_path / f"{suffix}.libfm"
        path.write_text("\n".join(l + extra for l in lines) + "\n")
        rows, y = read_libfm_text(path)
        X, y_ref = load_libfm(path)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(rows.indptr, X.indptr)
        np.testing.assert_array_equal(rows.indices, X.indices)
        np.testing.assert_array_equal(rows.data, X.data)
        assert rows.n_cols == X.shape[1]
