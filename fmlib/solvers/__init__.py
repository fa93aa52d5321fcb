"""Solvers (chapter "Beyond SGD"): ``fit``, the one entry point of every solver, coordinate
descent (ALS) and the Bayesian FM sampled by MCMC, on flat matrices and relation blocks."""
