r"""The Factorization Machine model of degree 2 (Rendle 2010, eq. 1).

.. math::

    \hat y(\mathbf x) = w_0 + \sum_{i=1}^{n} w_i x_i
        + \sum_{i=1}^{n} \sum_{j=i+1}^{n} \langle \mathbf v_i, \mathbf v_j \rangle\, x_i x_j

with parameters :math:`w_0 \in \mathbb R`, :math:`\mathbf w \in \mathbb R^n` and
:math:`\mathbf V \in \mathbb R^{n \times k}`. The chapter "Sparse data and the FM
model" introduces the equation; "Fast pairwise interactions: Lemma 3.1" its fast evaluation.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from fmlib.model import saving
from fmlib.model.pairwise import pairwise_naive_unchecked
from fmlib.model.score import fm_score_unchecked, linear_unchecked
from fmlib.validation import (
    as_batch,
    as_host_matrix,
    check_dtype,
    check_finite_array,
    check_fits,
    check_float,
    check_int,
    check_numeric_array,
    check_seed,
    check_task,
    iter_batches,
)


class FactorizationMachine(tf.Module):
    r"""A degree-2 Factorization Machine holding ``w0``, ``w`` and ``V`` as ``tf.Variable`` s.

    .. math::

        \hat y(\mathbf x) = w_0 + \mathbf w^\top \mathbf x
            + \sum_{i<j} \langle \mathbf v_i, \mathbf v_j \rangle\, x_i x_j

    Args:
        n_features: number of features ``n`` (columns of ``X``). ``m`` is
            accepted as an alias, for code written against the original
            TF2 project, garethjns/TF2FactorizationMachine (``FactorizationMachine(m=16)``).
        k: number of latent factors per feature (columns of ``V``).
        init_std: standard deviation of the normal initialisation of ``V``
            (``w0`` and ``w`` start at zero, as in libFM).
        seed: seed for the initialisation of ``V``; the same seed gives the same model.
        pairwise: ``"fast"`` (Lemma 3.1, O(k n)) or ``"naive"`` (the definition,
            O(k n²), for teaching).
        dtype: ``tf.float32`` (default) or ``tf.float64``.
        task: ``"regression"`` (ŷ is the prediction), ``"classification"`` (ŷ is the
            logit of :math:`P(y = 1 \mid \mathbf x) = \sigma(\hat y)`), or None (default)
            until :func:`fmlib.fit` sets it. :func:`fmlib.evaluate` and :meth:`predict_proba`
            follow it (chapter "Learning").

    Shapes:
        ``X`` of shape ``(batch, n)`` (dense, ``tf.SparseTensor`` or ``scipy.sparse``)
        gives ``(batch,)`` predictions.

    Example:
        >>> fm = FactorizationMachine(n_features=16, k=4, seed=0)
        >>> fm(np.zeros((3, 16))).shape
        TensorShape([3])
    """

    # fmlib.fit's compiled training steps (see fmlib.solvers.fit): a cache, not part of the model,
    # so tf.Module's variable collection and checkpoints leave it out.
    _TF_MODULE_IGNORED_PROPERTIES = tf.Module._TF_MODULE_IGNORED_PROPERTIES | {
        "_compiled_steps"
    }

    def __init__(
        self,
        n_features: int | None = None,
        k: int = 8,
        *,
        m: int | None = None,
        init_std: float = 0.01,
        seed: int | None = None,
        pairwise: str = "fast",
        dtype: tf.DType = tf.float32,
        task: str | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        if n_features is None and m is None:
            raise TypeError(
                "FactorizationMachine needs `n_features` (the number of columns of X)."
            )
        if n_features is not None and m is not None and n_features != m:
            raise ValueError(
                f"`m` is an alias of `n_features`; got n_features={n_features} and m={m}."
            )
        self.n_features = check_int(
            n_features if n_features is not None else m, "n_features"
        )
        self.k = check_int(k, "k")
        init_std = check_float(init_std, "init_std")
        self.dtype = dtype = check_dtype(dtype)
        self.pairwise = pairwise  # validated by the property setter
        self.task = task  # likewise
        rng = np.random.default_rng(check_seed(seed))
        object.__setattr__(self, "_compiled_steps", {})  # untracked: see above
        with self.name_scope:
            self.w0 = tf.Variable(tf.zeros([], dtype), name="w0")
            self.w = tf.Variable(tf.zeros([self.n_features], dtype), name="w")
            self.V = tf.Variable(
                rng.normal(0.0, init_std, size=(self.n_features, self.k)).astype(
                    dtype.as_numpy_dtype
                ),
                name="V",
            )

    # --- names used by the original TF2 project --------------------------------------
    @property
    def m(self) -> int:
        """Alias of ``n_features``."""
        return self.n_features

    @property
    def b(self) -> tf.Variable:
        """Alias of ``w0`` (the global bias)."""
        return self.w0

    @property
    def v(self) -> tf.Variable:
        """Alias of ``V`` (the factor matrix)."""
        return self.V

    # --- the model -------------------------------------------------------------------
    @property
    def pairwise(self) -> str:
        """``"fast"`` or ``"naive"``: how the pairwise term is computed."""
        return self._pairwise

    @pairwise.setter
    def pairwise(self, value: str) -> None:
        if not (isinstance(value, str) and value in ("fast", "naive")):
            raise ValueError(f"`pairwise` must be 'fast' or 'naive'; got {value!r}.")
        self._pairwise = value

    @property
    def task(self) -> str | None:
        """``"regression"``, ``"classification"`` or None (not trained yet): what ŷ means."""
        return self._task

    @task.setter
    def task(self, value: str | None) -> None:
        self._task = check_task(value, allow_none=True)

    def _call_checked(self, X) -> tf.Tensor:
        """ŷ for a batch that has already been through ``as_batch``."""
        if self._pairwise == "naive":
            return linear_unchecked(self.w0, self.w, X) + pairwise_naive_unchecked(
                X, self.V
            )
        return fm_score_unchecked(self.w0, self.w, self.V, X)

    def __call__(self, X) -> tf.Tensor:
        """Predict ŷ for a batch ``X`` of shape ``(batch, n)``; returns shape ``(batch,)``."""
        return self._call_checked(as_batch(X, self.n_features, self.dtype, name="X"))

    def predict(self, X, batch_size: int = 8192) -> np.ndarray:
        """ŷ for any number of rows, computed ``batch_size`` rows at a time.

        Returns a float numpy array of shape ``(N,)``. For a model trained with
        ``task="classification"`` these are logits; see :meth:`predict_proba`.
        """
        batch_size = check_int(batch_size, "batch_size")
        return self._predict_host(
            as_host_matrix(X, self.n_features, self.dtype, name="X"), batch_size
        )

    def _predict_host(self, X, batch_size: int) -> np.ndarray:
        """ŷ for a matrix already checked by ``as_host_matrix``, ``batch_size`` rows at a time."""
        outs = [
            self._call_checked(Xb).numpy() for _, _, Xb in iter_batches(X, batch_size)
        ]
        return (
            np.concatenate(outs) if outs else np.zeros([0], self.dtype.as_numpy_dtype)
        )

    def predict_proba(self, X, batch_size: int = 8192) -> np.ndarray:
        """σ(ŷ): the probability of the positive class, for a classifier (or a model without a task).

        Raises:
            AttributeError: the model is a regression model (``task="regression"``), whose ŷ is
                not a logit.
        """
        if self._task == "regression":
            raise AttributeError(
                "predict_proba is for task='classification'; this model was "
                "trained for regression: use predict."
            )
        return 1.0 / (1.0 + np.exp(-self.predict(X, batch_size)))

    def get_weights(self) -> dict[str, np.ndarray]:
        """A copy of the parameters as numpy arrays: ``{"w0", "w", "V"}``."""
        return {"w0": self.w0.numpy(), "w": self.w.numpy(), "V": self.V.numpy()}

    def set_weights(self, w0=None, w=None, V=None) -> None:
        """Assign parameters (shapes are checked); ``None`` leaves one unchanged."""
        checked = [
            (var, self._parameter(value, tuple(var.shape), name))
            for var, value, name in (
                (self.w0, w0, "w0"),
                (self.w, w, "w"),
                (self.V, V, "V"),
            )
            if value is not None
        ]
        for (
            var,
            value,
        ) in checked:  # all checked first: a bad V leaves w0 and w untouched too
            var.assign(value)

    def _parameter(self, value, shape: tuple, name: str) -> np.ndarray:
        """``value`` as a finite array of ``shape`` in the model's dtype, or an error naming it."""
        value = (
            value.numpy()
            if isinstance(value, (tf.Tensor, tf.Variable))
            else np.asarray(value)
        )
        check_numeric_array(value.dtype, name)
        if value.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape}; got {value.shape}.")
        check_finite_array(value.astype(np.float64), name)
        check_fits(value, self.dtype, name)
        return value.astype(self.dtype.as_numpy_dtype)

    # --- saving (fmlib.model.saving) ---------------------------------------------------------
    def save(self, path) -> str:
        """Save the model to one ``.npz`` file: ``w0``, ``w``, ``V`` and a JSON header with
        ``n_features``, ``k``, ``dtype``, ``pairwise``, ``task`` and the fmlib version.

        Nothing is pickled: loading runs no code, and numpy alone reads the arrays. Use it to
        keep a model for Python and fmlib (:meth:`load` restores it, and :func:`fmlib.fit` can
        train it further); use :meth:`export` to serve it without fmlib. Returns ``path``.

        Example:
            >>> fm = FactorizationMachine(16, k=4, seed=0)
            >>> path = fm.save("fm.npz")
            >>> FactorizationMachine.load(path).get_weights()["V"].shape
            (16, 4)
        """
        if not isinstance(self, FactorizationMachine):
            raise TypeError(
                f"`self` must be a fmlib.FactorizationMachine (the model to save); "
                f"got {type(self).__name__}."
            )
        return saving.save(self, path)

    @classmethod
    def load(cls, path) -> "FactorizationMachine":
        """The model written by :meth:`save` at ``path``: same weights, shape, dtype, task.

        Raises:
            FileNotFoundError: there is no file at ``path``.
            ValueError: the file is not a model saved by fmlib, is corrupt, or has a newer
                format version (the message names ``path``).
        """
        return saving.load(cls, path)

    def export(self, path) -> str:
        """Export a TensorFlow SavedModel directory at ``path``, for use outside Python or fmlib.

        Its ``serving_default`` signature takes ``x``, a dense float batch ``(batch, n)`` of the
        model's dtype, and returns ``{"y_hat": ŷ}`` (eq. 1, by Lemma 3.1), plus
        ``"probability"`` (σ(ŷ)) for a classifier; ``serving_sparse`` takes ``indices``
        ``(nnz, 2)`` int64, ``values`` ``(nnz,)`` and ``dense_shape`` ``(2,)`` int64 of a sparse
        batch (unique indices). Inputs are not checked there: check them before serving.
        The export is for prediction (TF Serving, C++, Java, ``tf.saved_model.load``); keep
        an :meth:`save` file to train further. Returns ``path``.

        Example:
            >>> path = FactorizationMachine(16, k=4, seed=0).export("fm_savedmodel")
            >>> serve = tf.saved_model.load(path).signatures["serving_default"]
            >>> serve(x=tf.zeros((3, 16)))["y_hat"].shape
            TensorShape([3])
        """
        if not isinstance(self, FactorizationMachine):
            raise TypeError(
                f"`self` must be a fmlib.FactorizationMachine (the model to export); "
                f"got {type(self).__name__}."
            )
        return saving.export(self, path)

    def __repr__(self) -> str:
        return (
            f"FactorizationMachine(n_features={self.n_features}, k={self.k}, "
            f"pairwise={self._pairwise!r}, dtype={self.dtype.name}, task={self._task!r})"
        )
