"""fmlib.interop.libfm_model: libFM's text model file, read, scored and written."""

import numpy as np
import pytest

import fmlib
from fmlib.interop.libfm_model import read_libfm_model, write_libfm_model
from fmlib.solvers.libfm import Params

# n = 3 features, k = 2 factors, as libFM's fm_model::saveModel writes them
HAND = """#global bias W0
0.5
#unary interactions Wj
1
-2
0.25
#pairwise interactions Vj,f
1 0
0.5 2
-1 1
"""


def test_hand_written_model_is_scored_by_its_definition(tmp_path):
    path = tmp_path / "fm.model"
    path.write_text(HAND)
    fm = fmlib.load_libfm_model(path)
    X = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 3.0]])
    # y = w0 + sum w_j x_j + sum_{j<l} <v_j, v_l> x_j x_l, with <v0,v1> = 0.5,
    # <v0,v2> = -1, <v1,v2> = 1.5
    expected = [0.5 + 1 - 2 + 0.5, 0.5 - 4 + 0.25 + 1.5 * 2, 0.5 + 1 + 0.75 - 1 * 3]
    np.testing.assert_allclose(fm.predict(X), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "k0,k1", [(True, True), (False, True), (True, False), (False, False)]
)
def test_round_trip_is_exact(tmp_path, k0, k1):
    rng = np.random.default_rng(0)
    p = Params(
        np.array([rng.normal()]),
        rng.normal(size=5) * 1e-7,
        rng.normal(size=(5, 3)),
        k0,
        k1,
    )
    back = read_libfm_model(write_libfm_model(tmp_path / "m", p))
    assert (back.k0, back.k1) == (k0, k1)
    assert back.w0[0] == (p.w0[0] if k0 else 0.0)
    np.testing.assert_array_equal(back.w, p.w if k1 else np.zeros(5))
    np.testing.assert_array_equal(back.V, p.V)


def test_factorization_machine_round_trip(tmp_path):
    fm = fmlib.FactorizationMachine(4, 3, init_std=0.3, seed=2, dtype="float64")
    fm.set_weights(w0=0.1 / 3, w=np.arange(4) / 7)
    back = fmlib.load_libfm_model(fmlib.save_libfm_model(tmp_path / "m", fm))
    for name, value in fm.get_weights().items():
        np.testing.assert_array_equal(back.get_weights()[name], value)
    text = (tmp_path / "m").read_text().splitlines()
    assert text[0] == "#global bias W0" and text[2] == "#unary interactions Wj"
    assert text[7] == "#pairwise interactions Vj,f" and len(text[8].split(" ")) == 3


def test_malformed_model_files(tmp_path):
    path = tmp_path / "bad"
    path.write_text(HAND.replace("-2", "minus two"))
    with pytest.raises(
        ValueError, match=r"bad, line 5: expected a number; got 'minus two'"
    ):
        read_libfm_model(path)
    path.write_text(HAND.replace("0.5 2", "0.5"))
    with pytest.raises(ValueError, match=r"line 9: expected 2 factor values"):
        read_libfm_model(path)
    path.write_text(HAND.replace("0.25\n", ""))
    with pytest.raises(
        ValueError, match="unary section has 2 values but the pairwise section 3"
    ):
        read_libfm_model(path)
    path.write_text("hello\n")
    with pytest.raises(ValueError, match="line 1: expected '#global bias W0'"):
        read_libfm_model(path)
    path.write_text(HAND)
    with pytest.raises(ValueError, match="has 3 features; expected n_features=4"):
        read_libfm_model(path, n_features=4)
    with pytest.raises(
        TypeError, match="`model` must be a FactorizationMachine; got dict"
    ):
        fmlib.save_libfm_model(tmp_path / "x", {})
