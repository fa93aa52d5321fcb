"""The paper's claims (chapter "The paper's claims, reproduced"): matrix factorization,
SVD++, PITF and FPMC as FMs, and the degree-2 polynomial (SVM) model."""
