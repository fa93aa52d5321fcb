"""Gradient training (chapters "Learning" and
"Performance and scale"): the plain step, dense and
row-sparse minibatch epochs, the optimizers, the shared epoch loop, divergence, metrics,
and the Keras layers."""
