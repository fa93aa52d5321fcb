r"""Synthetic ratings as a stream of chunks, for data larger than memory (chapter "Performance
and scale").

:func:`make_ratings` holds every rating, its pandas frame and its encoding at once: fine up to
about :math:`10^7` ratings. :func:`stream_ratings` draws the same kind of data chunk by chunk,
already encoded, so that :math:`10^8` ratings can be generated and trained on
(``fmlib.fit(model, stream.dataset(batch_size), None)``) while only one chunk is in memory.

The planted FM (biases, factors, age groups, genres) is :func:`make_ratings`' for the same
arguments and seed. The ratings differ: :func:`make_ratings` draws *distinct* (user, item)
pairs, which needs the set of pairs drawn so far; a stream draws each pair independently from
power laws with the same exponents (the ranking of users by activity and of items by
popularity is drawn afresh), so a pair may repeat, as repeated interactions do in logs.
Chunk ``c`` is drawn from its own generator seeded by ``(seed, c)``: iterating again gives the
same data bit for bit, and chunks can be produced in any order.

The columns of every chunk are, in order: users, items, age groups, genres (multi-hot,
normalised to sum to 1), the order of ``truth``'s feature names and of
:class:`fmlib.FeatureEncoder`'s columns for ``categorical=["user", "item", "age_group"],
multi_hot=["genres"]`` on a frame in which every id occurs.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from fmlib.data.synthetic import PlantedFM, _power_law_weights, make_ratings
from fmlib.validation import check_dtype, check_int, check_seed


class RatingStream:
    """Chunks of encoded synthetic ratings; made by :func:`stream_ratings`.

    Attributes:
        truth: the planted :class:`~fmlib.PlantedFM` (feature names in column order).
        n_features: the number of columns of every chunk.
        n_ratings: ratings in one pass over the stream.
        chunk_size: ratings per chunk (the last chunk may be smaller).
    """

    def __init__(
        self,
        base,
        n_ratings: int,
        chunk_size: int,
        output: str,
        noise: float,
        activity_skew: float,
        popularity_skew: float,
        seed: int | None,
    ):
        self.truth: PlantedFM = base.truth
        self.n_ratings, self.chunk_size, self._output, self._noise = (
            n_ratings,
            chunk_size,
            output,
            noise,
        )
        # seed None: fresh entropy, drawn once, so that every pass over the stream is the same
        self._seed = np.random.SeedSequence().entropy if seed is None else seed
        self._w, self._V = base.truth.w.to_numpy(), base.truth.V.to_numpy()
        self.n_features = self._w.size
        users, items = base.users, base.items
        self._n_users, self._n_items = len(users), len(items)
        self._age = users["age_group"].to_numpy() if "age_group" in users else None
        self._n_ages = sum(name.startswith("age_group=") for name in base.truth.w.index)
        self._genres = self._genre_block(items) if "genres" in items else None
        rng = np.random.default_rng(
            [self._seed, 2**32 - 1]
        )  # the laws: not any chunk's stream
        self._p_user = _power_law_weights(self._n_users, activity_skew, rng)
        self._p_item = _power_law_weights(self._n_items, popularity_skew, rng)

    def _genre_block(self, items) -> sp.csr_matrix:
        """Items × genres, each row normalised to sum to 1 (the generator's genre block)."""
        lists = items["genres"].to_list()
        n_genres = self.n_features - self._n_users - self._n_items - self._n_ages
        rows = np.repeat(np.arange(len(lists)), [len(g) for g in lists])
        cols = np.concatenate([np.asarray(g, dtype=np.int64) for g in lists])
        vals = np.repeat([1.0 / len(g) for g in lists], [len(g) for g in lists])
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(lists), n_genres))

    @property
    def n_chunks(self) -> int:
        """Chunks in one pass."""
        return -(-self.n_ratings // self.chunk_size)

    def chunk(self, c: int, dtype=np.float32) -> tuple[sp.csr_matrix, np.ndarray]:
        """Chunk ``c`` as ``(X, y)``: a CSR matrix of ``n_features`` columns and its ratings
        (``dtype`` float32 or float64: an integer dtype would truncate the ratings)."""
        dtype = check_dtype(dtype).as_numpy_dtype
        c = check_int(c, "c", 0)
        if c >= self.n_chunks:
            raise ValueError(f"`c` must be < n_chunks = {self.n_chunks}; got {c}.")
        size = min(self.chunk_size, self.n_ratings - c * self.chunk_size)
        rng = np.random.default_rng([self._seed, c])
        users = rng.choice(self._n_users, size, p=self._p_user)
        items = rng.choice(self._n_items, size, p=self._p_item)
        rows = np.arange(size)
        blocks = [
            sp.csr_matrix((np.ones(size), (rows, users)), shape=(size, self._n_users)),
            sp.csr_matrix((np.ones(size), (rows, items)), shape=(size, self._n_items)),
        ]
        if self._n_ages:
            blocks.append(
                sp.csr_matrix(
                    (np.ones(size), (rows, self._age[users])),
                    shape=(size, self._n_ages),
                )
            )
        if self._genres is not None:
            blocks.append(self._genres[items])
        X = sp.hstack(blocks, format="csr")
        XV = X @ self._V  # Lemma 3.1, per chunk
        score = (
            self.truth.w0
            + X @ self._w
            + 0.5 * ((XV**2).sum(1) - X.multiply(X) @ (self._V**2).sum(1))
        )
        noisy = score + rng.normal(0, self._noise, size) if self._noise > 0 else score
        if self._output == "continuous":
            y = noisy
        elif self._output == "stars":
            y = np.clip(np.rint(noisy), 1, 5)
        else:
            y = (rng.random(size) < 1 / (1 + np.exp(-(noisy - self.truth.w0)))).astype(
                float
            )
        return X.astype(dtype), y.astype(dtype)

    def chunks(self, dtype=np.float32) -> Iterator[tuple[sp.csr_matrix, np.ndarray]]:
        """Every chunk in order, one at a time."""
        for c in range(self.n_chunks):
            yield self.chunk(c, dtype)

    def dataset(self, batch_size: int, dtype: tf.DType = tf.float32) -> tf.data.Dataset:
        """A ``tf.data.Dataset`` of ``(X batch, y batch)``: sparse batches of ``batch_size`` rows
        cut from each chunk in turn (for ``fmlib.fit``). One chunk is held at a time."""
        batch_size = check_int(batch_size, "batch_size")
        dtype = check_dtype(dtype)  # an integer dtype would truncate ratings
        np_dtype = dtype.as_numpy_dtype

        def batches():
            for X, y in self.chunks(np_dtype):
                for s in range(0, X.shape[0], batch_size):
                    Xb = X[s : s + batch_size].tocoo()
                    indices = np.stack([Xb.row, Xb.col], axis=1).astype(np.int64)
                    yield (
                        tf.SparseTensor(indices, Xb.data, Xb.shape),
                        y[s : s + batch_size],
                    )

        return tf.data.Dataset.from_generator(
            batches,
            output_signature=(
                tf.SparseTensorSpec([None, self.n_features], dtype),
                tf.TensorSpec([None], dtype),
            ),
        )

    def __repr__(self) -> str:
        return (
            f"RatingStream(n_ratings={self.n_ratings}, chunk_size={self.chunk_size}, "
            f"n_features={self.n_features})"
        )


# the arguments of make_ratings that shape the planted FM and that stream_ratings passes on
PLANTED = ("global_bias", "bias_std", "factor_std", "max_genres_per_item")


def stream_ratings(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    chunk_size: int = 1_000_000,
    k: int = 4,
    n_age_groups: int = 0,
    n_genres: int = 0,
    popularity_skew: float = 0.8,
    activity_skew: float = 0.8,
    noise: float = 0.3,
    output: str = "continuous",
    seed: int | None = 0,
    **planted,
) -> RatingStream:
    """``n_ratings`` synthetic ratings from the planted FM of :func:`make_ratings`, as a stream
    of encoded chunks (see the module docstring for how it differs).

    ``n_users``, ``n_items``, ``k``, ``n_age_groups``, ``n_genres``, ``popularity_skew``,
    ``activity_skew``, ``noise``, ``output`` and ``seed`` are as in :func:`make_ratings`.

    Args:
        n_ratings: ratings in one pass (any number: pairs may repeat).
        chunk_size: ratings generated and held at a time.
        planted: further arguments of :func:`make_ratings` that shape the planted FM
            (``global_bias``, ``bias_std``, ``factor_std``, ``max_genres_per_item``).

    Example:
        >>> stream = stream_ratings(100, 50, n_ratings=2500, chunk_size=1000, seed=1)
        >>> [X.shape for X, y in stream.chunks()]
        [(1000, 150), (1000, 150), (500, 150)]
    """
    n_ratings = check_int(n_ratings, "n_ratings")
    chunk_size = check_int(chunk_size, "chunk_size")
    unknown = sorted(set(planted) - set(PLANTED))
    if unknown:
        raise TypeError(
            f"stream_ratings() got unexpected keyword argument(s) {unknown}; the "
            f"planted FM's further arguments are {list(PLANTED)}."
        )
    # the planted model, side features and argument checks of make_ratings (one rating drawn)
    base = make_ratings(
        n_users,
        n_items,
        n_ratings=1,
        k=k,
        n_age_groups=n_age_groups,
        n_genres=n_genres,
        popularity_skew=popularity_skew,
        activity_skew=activity_skew,
        noise=noise,
        output=output,
        seed=check_seed(seed),
        **planted,
    )
    return RatingStream(
        base, n_ratings, chunk_size, output, noise, activity_skew, popularity_skew, seed
    )
