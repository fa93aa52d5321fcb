"""The model (part "The model" of the book): eq. (1) by its definition and by Lemma 3.1,
the losses, saving, and the paper's Figure 1 data."""
