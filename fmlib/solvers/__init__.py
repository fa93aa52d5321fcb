"""Solvers (chapter "Coordinate descent" and chapter "The Bayesian factorization machine"):
``fit``, the one entry point of every solver, coordinate descent (ALS), the Bayesian FM sampled
by MCMC and fitted by variational inference, on flat matrices and relation blocks."""
