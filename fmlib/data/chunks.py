r"""Minibatches grouped by a relation block's rows: an opt-in shuffle for SGD and Adam.

An exact gradient step on a :class:`fmlib.RelationalDesign` reads the non-zeros of every
*distinct* row of a block in its batch (:mod:`fmlib.learning.relational`). With the
ratings shuffled independently, a batch of :math:`|\mathcal B|` of the :math:`N`
ratings holds

.. math::
    :label: eq-chunk-iid

    \mathbb E\,|U| \approx \sum_u \big(1 - e^{-|\mathcal B|\, n_u / N}\big)

distinct users (:math:`n_u` the ratings of user :math:`u`), close to
:math:`|\mathcal B|` while the batch is small against the number of users: the blocks
then save little per step. :class:`fmlib.BlockChunks` changes the order instead of the
step: every epoch it shuffles the ratings of each block row, cuts them into consecutive
chunks of ``size`` ratings (a row's last chunk may be shorter), shuffles the chunks and
concatenates them. With :math:`L` = ``size``, user :math:`u` has
:math:`n^{\mathrm{ch}}_u = \lceil n_u / L \rceil` chunks out of
:math:`n^{\mathrm{ch}} = \sum_u n^{\mathrm{ch}}_u`, and a batch of :math:`|\mathcal B|`
consecutive ratings touches :math:`\nu = 1 + (|\mathcal B| - 1)\, n^{\mathrm{ch}} / N`
chunks on average (the one it starts in and
those starting inside it), about as if drawn at random, so the same argument gives

.. math::
    :label: eq-chunk-distinct

    \mathbb E\,|U| &\approx \sum_u \big(1 - e^{-\nu\, n^{\mathrm{ch}}_u / n^{\mathrm{ch}}}\big)
    \approx \nu \\
    &\approx 1 + (|\mathcal B| - 1) / \bar L \quad (\text{small batches}),

with :math:`\bar L = N / n^{\mathrm{ch}}` the mean chunk length: about
:math:`|\mathcal B| / L` distinct users when most users have many more than :math:`L`
ratings (``size=1``: :math:`\nu = |\mathcal B|`, the independent case again). The step is as exact as before;
what changes is the optimisation: the ratings of a batch are no longer independent
draws, so the accuracy reached in a number of epochs can differ. Chapter "Relation blocks",
section "SGD and Adam on relation blocks", measures both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fmlib.data.design import RelationalDesign
from fmlib.validation import check_bool, check_int


class BlockChunks:
    """Shuffle for :func:`fmlib.fit`: chunks of ``size`` ratings of one block row.

    Pass it as ``fmlib.fit(model, design, y, shuffle=BlockChunks("user", 16))`` with a
    :class:`fmlib.RelationalDesign` and ``solver="gradient"`` (``updates="dense"`` or
    ``"sparse"``); each epoch's order is :meth:`permutation`, cut into batches of
    ``batch_size`` as with ``shuffle=True``. The sweeps take no order:
    ``fit(..., solver="als", shuffle=BlockChunks(...))`` is a ValueError, and
    :class:`fmlib.BayesianFM` has no ``shuffle`` argument.

    Args:
        block: the name of a relation block of the design (``RelationBlock.name``,
            e.g. ``"user"``).
        size: ratings per chunk, an integer >= 1 (1: an independent shuffle).

    Raises:
        TypeError: ``block`` not a string or ``size`` not an integer.
        ValueError: ``size`` < 1.

    Example:
        >>> chunks = BlockChunks("user", 16)
        >>> chunks
        BlockChunks('user', 16)
    """

    def __init__(self, block: str, size: int):
        if not isinstance(block, str):
            raise TypeError(
                "`block` must be the name (str) of a relation block; got "
                f"{type(block).__name__} {block!r}."
            )
        self.block = block
        self.size = check_int(size, "size")

    def __repr__(self) -> str:
        return f"BlockChunks({self.block!r}, {self.size})"

    def block_index(self, design: RelationalDesign) -> np.ndarray:
        """``index`` of the design's block named ``block``, or a ValueError listing the
        names."""
        if not isinstance(design, RelationalDesign):
            raise TypeError(
                "`design` must be a fmlib.RelationalDesign; got "
                f"{type(design).__name__}."
            )
        names = [b.name for b in design.blocks]
        if names.count(self.block) != 1:
            problem = "no" if self.block not in names else "more than one"
            raise ValueError(
                f"BlockChunks `block` must name one relation block of the design "
                f"(one of {names}); got {self.block!r}, {problem} block of that name."
            )
        return design.blocks[names.index(self.block)].index

    def permutation(
        self, design: RelationalDesign, rng: np.random.Generator
    ) -> np.ndarray:
        """One epoch's order of the ratings ``0..N-1``: grouped in chunks by block row.

        The ratings of every row of the block, in random order, are cut into chunks of
        ``size`` (the row's last chunk holds the rest); the chunks come in random order.

        Args:
            design: the relational design (its block ``block`` gives the rows).
            rng: the generator; the same state gives the same order.

        Returns:
            ``(N,)`` int64, a permutation of ``range(N)``.
        """
        index = self.block_index(design)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                "`rng` must be a numpy.random.Generator (np.random.default_rng(seed)); "
                f"got {type(rng).__name__}."
            )
        n = index.size
        # the ratings grouped by row, each row's in random order (temporaries of N
        # integers are freed as soon as they are used: at 10^7 ratings each is 76 MiB)
        shuffled = rng.permutation(n)
        by_row = shuffled[np.argsort(index[shuffled], kind="stable")]
        del shuffled
        counts = np.bincount(index)  # ratings per row
        starts = np.cumsum(counts) - counts  # first position of each row in by_row
        chunks_per_row = -(-counts // self.size)
        first_chunk = np.cumsum(chunks_per_row) - chunks_per_row
        rows = index[by_row]
        chunk = np.arange(n)
        chunk -= starts[rows]  # position within the row: 0, 1, ...
        chunk //= self.size
        chunk += first_chunk[rows]  # the global chunk of each rating
        del rows
        rank = rng.permutation(int(chunks_per_row.sum()))  # where each chunk goes
        place = rank[chunk]
        del chunk
        return by_row[np.argsort(place, kind="stable")]


def check_shuffle(shuffle: Any, X: Any, solver: str) -> bool | BlockChunks:
    """``fit``'s ``shuffle``: a bool, or a :class:`BlockChunks` for a relational design
    trained with ``solver="gradient"``; otherwise a clear error."""
    if not isinstance(shuffle, BlockChunks):
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(
                "`shuffle` must be True, False or a fmlib.BlockChunks; got "
                f"{type(shuffle).__name__} {shuffle!r}."
            )
        return check_bool(shuffle, "shuffle")
    if not isinstance(X, RelationalDesign):
        raise TypeError(
            f"shuffle={shuffle!r} needs `X` to be a fmlib.RelationalDesign (it groups "
            f"the ratings by a relation block's rows); got {type(X).__name__}."
        )
    if solver != "gradient":
        raise ValueError(
            f"shuffle={shuffle!r} orders the minibatches of solver='gradient'; got "
            f"solver={solver!r}, whose sweeps take no shuffle."
        )
    shuffle.block_index(X)  # the block exists
    return shuffle
