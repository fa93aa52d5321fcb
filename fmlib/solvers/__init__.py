"""Solvers (chapters "Coordinate descent", "The Bayesian factorization machine" and
"Star ratings and variational inference"):
``fit``, the one entry point of every solver, coordinate descent (ALS), the Bayesian FM sampled
by MCMC and fitted by variational inference, on flat matrices and relation blocks."""
