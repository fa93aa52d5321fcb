r"""Optimizers that update only the rows a batch touched (chapter "Performance and scale").

A minibatch of sparse rows uses few features: its gradient of :math:`\mathbf w` and
:math:`\mathbf V` is zero outside the rows :math:`U` of the features present. These optimizers
take that gradient as the rows :math:`U` (listed once each) and their gradient
:math:`\mathbf G_U`, and change the parameters, and their own state, in those rows only,
by scatter updates: a step costs :math:`O(k\,|U|)`, not :math:`O(k n)`.

With :math:`\eta` the learning rate and :math:`\mathbf g = \mathbf G_u` the gradient of row
:math:`u \in U`:

* **SGD**: :math:`\theta_u \leftarrow \theta_u - \eta\, \mathbf g`. Rows outside :math:`U` have a
  zero gradient, so this *is* dense SGD, computed sparsely.
* **Lazy Adagrad**: :math:`\mathbf a_u \leftarrow \mathbf a_u + \mathbf g^2`,
  :math:`\theta_u \leftarrow \theta_u - \eta\, \mathbf g / \sqrt{\mathbf a_u + \epsilon}`
  (Keras' Adagrad, accumulators starting at 0.1). Also equal to dense Adagrad: a zero gradient
  changes neither the accumulator nor the parameter.
* **Lazy Adam**: with the step counter :math:`t` (one per batch, shared by all rows),

  .. math::

      & \mathbf m_u \leftarrow \beta_1 \mathbf m_u + (1 - \beta_1)\, \mathbf g, \\
      & \mathbf v_u \leftarrow \beta_2 \mathbf v_u + (1 - \beta_2)\, \mathbf g^2, \\
      & \theta_u \leftarrow \theta_u - \eta \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
      \frac{\mathbf m_u}{\sqrt{\mathbf v_u} + \epsilon}

  (Keras' Adam, written for the rows in :math:`U`; the lazy Adam of TensorFlow Addons). It is
  *not* dense Adam: dense Adam also decays :math:`\mathbf m` and :math:`\mathbf v` of the rows
  outside :math:`U` and keeps moving them along their old momentum, so a feature keeps changing
  in batches that do not contain it. Lazy Adam moves a feature only when it is seen, as SGD
  does; its moments are those of the batches that contained the feature.

**Rows shared by several variables.** In an FM the row :math:`u` of :math:`\mathbf w` and the
row :math:`u` of :math:`\mathbf V` belong to the same feature, so a batch touches the same rows
of both. The optimizers keep the state of such *row variables* side by side, as one
:math:`n \times (1 + k)` matrix per slot, and update :math:`[\,w_u \mid \mathbf v_u\,]` as one
row: one gather and one scatter per slot serve both variables, and the arithmetic above runs
once per step on the :math:`|U| \times (1 + k)` gradient (on a CPU each operation of a compiled
step has a fixed cost of a few microseconds, and a step is a few dozen operations).
Variables updated whole every step (:math:`w_0`) get the same rules on their full gradient.
"""

from __future__ import annotations

import tensorflow as tf

from fmlib.validation import check_float


class LazyOptimizer(tf.Module):
    r"""Base class: ``apply(dense_grads, rows, row_grads)``.

    Args:
        dense: variables updated whole at every step (the FM's ``w0``).
        rows: variables indexed by the same rows (``w`` of shape ``(n,)`` and ``V`` of shape
            ``(n, k)``): only the rows a step names change, and their slots are stored side by
            side (module docstring).
        learning_rate: :math:`\eta > 0`.

    ``rows`` given to :meth:`apply` must be distinct (each touched row once, its gradient
    summed): the update is not linear in the gradient (squares, ratios), and the slots of a
    repeated row would be read once and written twice. ``apply`` does not check this;
    :class:`fmlib.learning.sparse.SparseStep` guarantees it by ``tf.unique``.
    """

    slot_names: tuple[str, ...] = ()
    slot_init: float = 0.0

    def __init__(self, dense, rows, learning_rate: float):
        super().__init__()
        dtype = rows[0].dtype
        self.dense, self.rows = list(dense), list(rows)
        self.widths = [1 if len(v.shape) == 1 else int(v.shape[1]) for v in self.rows]
        self.learning_rate = tf.Variable(
            check_float(learning_rate, "lr"),
            dtype=dtype,
            trainable=False,
            name="learning_rate",
        )
        self.iterations = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="iterations"
        )
        shapes = [v.shape for v in self.dense] + [(rows[0].shape[0], sum(self.widths))]
        # tf.constant in the variable's dtype: tf.cast(0.1, float64) would round 0.1 to float32
        self._slots = [
            {
                name: tf.Variable(
                    tf.fill(shape, tf.constant(self.slot_init, dtype)),
                    trainable=False,
                    name=name,
                )
                for name in self.slot_names
            }
            for shape in shapes
        ]

    def reset(self, learning_rate: float) -> None:
        """Back to the freshly built state (zero step, initial slots), with a new learning rate."""
        self.learning_rate.assign(learning_rate)
        self.iterations.assign(0)
        for slots in self._slots:
            for slot in slots.values():
                slot.assign(
                    tf.fill(tf.shape(slot), tf.constant(self.slot_init, slot.dtype))
                )

    def apply(self, dense_grads, rows, row_grads) -> None:
        """One step: every dense variable by its gradient, and the rows ``rows`` of the row
        variables by ``row_grads`` (one per row variable: ``(|rows|,)`` for ``w``,
        ``(|rows|, k)`` for ``V``)."""
        coef = self._coefficients()
        for grad, var, slots in zip(dense_grads, self.dense, self._slots):
            step, new = self.update(
                grad, {name: s.read_value() for name, s in slots.items()}, coef
            )
            var.assign_sub(step)
            for name, slot in slots.items():
                slot.assign(new[name])
        # [w_u | v_u] as one row: (|rows|, 1 + k)
        g = tf.concat(
            [tf.reshape(gr, [-1, width]) for gr, width in zip(row_grads, self.widths)],
            axis=1,
        )
        slots = self._slots[-1]
        step, new = self.update(
            g, {name: tf.gather(s, rows) for name, s in slots.items()}, coef
        )
        for name, slot in slots.items():
            slot.scatter_update(tf.IndexedSlices(new[name], rows))
        for var, part in zip(self.rows, tf.split(step, self.widths, axis=1)):
            part = part[:, 0] if len(var.shape) == 1 else part
            # theta_u - step written back: with distinct rows this is scatter_sub, and on a CPU
            # a gather and a scatter_update take about a third of scatter_sub's time
            var.scatter_update(tf.IndexedSlices(tf.gather(var, rows) - part, rows))
        self.iterations.assign_add(1)

    def _coefficients(self):
        """What every update of this step shares (computed once per step)."""
        return self.coefficient(self.learning_rate, self.iterations + 1)

    @classmethod
    def coefficient(cls, learning_rate, t):
        """What every update of step ``t`` (1, 2, ...) shares: :math:`\\eta` itself here.
        A class method, so that other loops (``fmlib.distributed``) use the same rule."""
        return learning_rate

    @classmethod
    def update(cls, g, slots, coef):
        """``(step, new_slots)`` for gradient ``g``, the current slot values of its rows and
        this step's coefficients (a class method: the rule alone, no state)."""
        raise NotImplementedError


class LazySGD(LazyOptimizer):
    r"""Plain SGD on the touched rows: :math:`\theta_u \leftarrow \theta_u - \eta\,\mathbf g`."""

    @classmethod
    def update(cls, g, slots, lr):
        return lr * g, {}


class LazyAdagrad(LazyOptimizer):
    r"""Adagrad on the touched rows: :math:`\mathbf a_u \mathrel{+}= \mathbf g^2`,
    :math:`\theta_u \mathrel{-}= \eta\,\mathbf g / \sqrt{\mathbf a_u + \epsilon}`
    (accumulators start at 0.1, :math:`\epsilon = 10^{-7}`, as in Keras)."""

    slot_names, slot_init, epsilon = ("accumulator",), 0.1, 1e-7

    @classmethod
    def update(cls, g, slots, lr):
        acc = slots["accumulator"] + g * g
        return lr * g / tf.sqrt(acc + cls.epsilon), {"accumulator": acc}


class LazyAdam(LazyOptimizer):
    r"""Adam on the touched rows (the module docstring has the equations and how it differs
    from dense Adam); :math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`, :math:`\epsilon = 10^{-7}`
    as in Keras."""

    slot_names, beta_1, beta_2, epsilon = ("m", "v"), 0.9, 0.999, 1e-7

    @classmethod
    def coefficient(cls, learning_rate, t):
        r"""The step size with both bias corrections, :math:`\eta\sqrt{1 - \beta_2^t} /
        (1 - \beta_1^t)`."""
        t = tf.cast(t, learning_rate.dtype)
        return learning_rate * tf.sqrt(1 - cls.beta_2**t) / (1 - cls.beta_1**t)

    @classmethod
    def update(cls, g, slots, alpha):
        m = slots["m"] + (g - slots["m"]) * (1 - cls.beta_1)
        v = slots["v"] + (g * g - slots["v"]) * (1 - cls.beta_2)
        return alpha * m / (tf.sqrt(v) + cls.epsilon), {"m": m, "v": v}


LAZY_OPTIMIZERS = {"sgd": LazySGD, "adagrad": LazyAdagrad, "adam": LazyAdam}
