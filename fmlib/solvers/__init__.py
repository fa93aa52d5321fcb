"""Solvers (chapter "Beyond SGD: coordinate descent and MCMC"): ``fit``, the one entry point of
every solver, coordinate descent (ALS) and the Bayesian FM sampled by MCMC, on flat matrices and
relation blocks."""
