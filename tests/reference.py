"""Independent numpy references, written from Rendle (2010) with plain loops."""
import numpy as np


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
            d_V[i, f] = x[i] * sum(V[j, f] * x[j] for j in range(n)) - V[i, f] * x[i] ** 2
    return d_w0, d_w, d_V
