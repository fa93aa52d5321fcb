r"""Optimizers that update only the rows a batch touched (chapter "Performance").

A minibatch of sparse rows uses few features: its gradient of :math:`\mathbf w` and
:math:`\mathbf V` is zero outside the rows :math:`U` of the features present. These optimizers
take that gradient as ``tf.IndexedSlices`` (the rows :math:`U`, listed once each, and their
gradient :math:`\mathbf G_U`) and change the parameters, and their own state, in those rows only,
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

      \mathbf m_u \leftarrow \beta_1 \mathbf m_u + (1 - \beta_1)\, \mathbf g, \qquad
      \mathbf v_u \leftarrow \beta_2 \mathbf v_u + (1 - \beta_2)\, \mathbf g^2, \qquad
      \theta_u \leftarrow \theta_u - \eta \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
      \frac{\mathbf m_u}{\sqrt{\mathbf v_u} + \epsilon}

  (Keras' Adam, written for the rows in :math:`U`; the lazy Adam of TensorFlow Addons). It is
  *not* dense Adam: dense Adam also decays :math:`\mathbf m` and :math:`\mathbf v` of the rows
  outside :math:`U` and keeps moving them along their old momentum, so a feature keeps changing
  in batches that do not contain it. Lazy Adam moves a feature only when it is seen, as SGD
  does; its moments are those of the batches that contained the feature.

Scalars (:math:`w_0`) and dense gradients get the same update for every entry.
"""
from __future__ import annotations

import tensorflow as tf

from ._inputs import check_float


class LazyOptimizer(tf.Module):
    """Base class: ``apply(grads_and_vars)`` with dense tensors or ``tf.IndexedSlices``.

    The indices of an ``tf.IndexedSlices`` must be distinct (each touched row once, its
    gradient summed): the update is not linear in the gradient (squares, ratios), and the slots
    of a repeated row would be read once and written twice. ``apply`` does not check this;
    :class:`fmlib.sparse_training.SparseStep` guarantees it by ``tf.unique``.
    Slots are created for the variables given to the constructor.
    """

    slot_names: tuple[str, ...] = ()
    slot_init: float = 0.0

    def __init__(self, variables, learning_rate: float):
        super().__init__()
        self.learning_rate = tf.Variable(check_float(learning_rate, "lr"), dtype=variables[0].dtype,
                                         trainable=False, name="learning_rate")
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        # tf.constant in the variable's dtype: tf.cast(0.1, float64) would round 0.1 to float32
        self._slots = {id(var): {name: tf.Variable(tf.fill(tf.shape(var), tf.constant(
                                     self.slot_init, var.dtype)), trainable=False, name=name)
                                 for name in self.slot_names}
                       for var in variables}

    def reset(self, learning_rate: float) -> None:
        """Back to the freshly built state (zero step, initial slots), with a new learning rate."""
        self.learning_rate.assign(learning_rate)
        self.iterations.assign(0)
        for slots in self._slots.values():
            for slot in slots.values():
                slot.assign(tf.fill(tf.shape(slot), tf.constant(self.slot_init, slot.dtype)))

    def apply(self, grads_and_vars) -> None:
        """One step: update every variable by its gradient (dense or row-sparse)."""
        for grad, var in grads_and_vars:
            slots = self._slots[id(var)]
            if isinstance(grad, tf.IndexedSlices):
                rows = grad.indices
                old = {name: tf.gather(slot, rows) for name, slot in slots.items()}
                step, new = self._update(grad.values, old)
                var.scatter_sub(tf.IndexedSlices(step, rows))
                for name, slot in slots.items():
                    slot.scatter_update(tf.IndexedSlices(new[name], rows))
            else:
                step, new = self._update(grad, {name: slot.read_value() for name, slot in slots.items()})
                var.assign_sub(step)
                for name, slot in slots.items():
                    slot.assign(new[name])
        self.iterations.assign_add(1)

    def _update(self, g, slots):
        """``(step, new_slots)`` for gradient ``g`` and the current slot values of its rows."""
        raise NotImplementedError


class LazySGD(LazyOptimizer):
    r"""Plain SGD on the touched rows: :math:`\theta_u \leftarrow \theta_u - \eta\,\mathbf g`."""

    def _update(self, g, slots):
        return self.learning_rate * g, {}


class LazyAdagrad(LazyOptimizer):
    r"""Adagrad on the touched rows: :math:`\mathbf a_u \mathrel{+}= \mathbf g^2`,
    :math:`\theta_u \mathrel{-}= \eta\,\mathbf g / \sqrt{\mathbf a_u + \epsilon}`
    (accumulators start at 0.1, :math:`\epsilon = 10^{-7}`, as in Keras)."""

    slot_names, slot_init, epsilon = ("accumulator",), 0.1, 1e-7

    def _update(self, g, slots):
        acc = slots["accumulator"] + g * g
        return self.learning_rate * g / tf.sqrt(acc + self.epsilon), {"accumulator": acc}


class LazyAdam(LazyOptimizer):
    r"""Adam on the touched rows (the module docstring has the equations and how it differs
    from dense Adam); :math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`, :math:`\epsilon = 10^{-7}`
    as in Keras."""

    slot_names, beta_1, beta_2, epsilon = ("m", "v"), 0.9, 0.999, 1e-7

    def _update(self, g, slots):
        t = tf.cast(self.iterations + 1, g.dtype)
        m = slots["m"] + (g - slots["m"]) * (1 - self.beta_1)
        v = slots["v"] + (g * g - slots["v"]) * (1 - self.beta_2)
        alpha = self.learning_rate * tf.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        return alpha * m / (tf.sqrt(v) + self.epsilon), {"m": m, "v": v}


LAZY_OPTIMIZERS = {"sgd": LazySGD, "adagrad": LazyAdagrad, "adam": LazyAdam}
