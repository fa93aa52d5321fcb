"""Independent numpy references, written from Rendle (2010) with plain loops."""

import numpy as np
import scipy.sparse as sp


def pairwise_loop(X: np.ndarray, V: np.ndarray) -> np.ndarray:
    """sum_{i<j} <v_i, v_j> x_i x_j, by a double loop over i < j for every row."""
    X = np.atleast_2d(X)
    out = np.zeros(X.shape[0])
    n = X.shape[1]
    for r in range(X.shape[0]):
        total = 0.0
        for i in range(n):
            for j in range(i + 1, n):
                total += float(np.dot(V[i], V[j])) * X[r, i] * X[r, j]
        out[r] = total
    return out


def fm_loop(X, w0, w, V) -> np.ndarray:
    """Eq. (1): w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j."""
    X = np.atleast_2d(X)
    return w0 + X @ w + pairwise_loop(X, V)


def fm_gradient(x, V):
    """Eq. (4) for one row x: d y_hat / d w0, d w_i, d v_if."""
    d_w0 = 1.0
    d_w = np.array(x, dtype=float)
    d_V = np.zeros_like(V, dtype=float)
    n, k = V.shape
    for i in range(n):
        for f in range(k):
            d_V[i, f] = (
                x[i] * sum(V[j, f] * x[j] for j in range(n)) - V[i, f] * x[i] ** 2
            )
    return d_w0, d_w, d_V


def fm_definition(X, w0, w, V) -> np.ndarray:
    """Eq. (1) by its definition, vectorised: the pairwise weights <v_i, v_j> for i < j."""
    X = np.atleast_2d(np.asarray(X, float))
    W = np.triu(V @ V.T, k=1)
    return w0 + X @ w + np.einsum("bi,ij,bj->b", X, W, X)


def planted_fm(n_rows=6000, n=40, k=3, noise=0.1, seed=0, classification=False):
    """Sparse one-hot-like rows (3 active features each) scored by a known FM."""
    rng = np.random.default_rng(seed)
    w0, w, V = 0.5, rng.normal(0, 0.5, n), rng.normal(0, 0.7, (n, k))
    cols = np.stack([rng.choice(n, 3, replace=False) for _ in range(n_rows)])
    X = sp.csr_matrix(
        (np.ones(3 * n_rows), (np.repeat(np.arange(n_rows), 3), cols.ravel())),
        shape=(n_rows, n),
    )
    Xd = X.toarray()
    score = w0 + Xd @ w + 0.5 * (((Xd @ V) ** 2) - (Xd**2) @ (V**2)).sum(1)
    if classification:
        y = (rng.random(n_rows) < 1 / (1 + np.exp(-3 * score))).astype(float)
    else:
        y = score + rng.normal(0, noise, n_rows)
    return X, y, score


def conditional(objective):
    """(mean, precision) of exp(-objective(t)) for an objective quadratic in t."""
    f_minus, f_zero, f_plus = objective(-1.0), objective(0.0), objective(1.0)
    precision = f_plus + f_minus - 2 * f_zero
    return (f_minus - f_plus) / 2 / precision, precision


def reference_sweep(X, y, w0, w, V, schedule, alpha, mu, lam, z, sample):
    """w0, then every w_l, then every v_lf (factor by factor), ONE parameter at a time, in the
    order of the schedule, each drawn from its conditional computed from the full data."""
    w0, w, V = float(w0), w.copy(), V.copy()
    params = {"w0": None, "w": w, "V": V}

    def objective_for(kind, index):
        def objective(t):
            nonlocal w0
            if kind == "w0":
                saved, w0 = w0, t
            else:
                saved, params[kind][index] = params[kind][index], t
            residual = y - fm_definition(X, w0, w, V)
            if kind == "w0":
                w0 = saved
            else:
                params[kind][index] = saved
            return (
                alpha / 2 * residual @ residual
                + lam[kind][index] / 2 * (t - mu[kind][index]) ** 2
            )

        return objective

    def draw(kind, index):
        mean, precision = conditional(objective_for(kind, index))
        return mean + (z[kind][index] / np.sqrt(precision) if sample else 0.0)

    w0 = draw("w0", ())
    for block in schedule:
        for col in block:
            w[col] = draw("w", col)
    for f in range(V.shape[1]):
        for block in schedule:
            for col in block:
                V[col, f] = draw("V", (col, f))
    return w0, w, V
