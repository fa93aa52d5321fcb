"""MovieLens loaders (Harper & Konstan 2015): ``ml-100k`` with its predefined splits, and ``ml-1m``.

MovieLens is licensed by GroupLens for research use with no redistribution, so
no copy of it is part of ``fmlib``. The loader looks for the data in a *data home*:

1. the ``data_home`` argument, else
2. the environment variable ``FMLIB_DATA``, else
3. a per-user cache directory (``$XDG_CACHE_HOME/fmlib`` or ``~/.cache/fmlib``).

If ``<data home>/ml-100k`` (or ``ml-1m``) is not there, the official zip is
downloaded from GroupLens (every wait bounded by ``timeout``), its sha256 checked,
extracted into a temporary folder, every file the loader reads checked again,
and only then moved into place in one step: an interrupted or corrupt download
never leaves a folder that a later call would take for the dataset. When the
data is present, loading prints nothing.

The files themselves are checked on every load against the official sha256
values (``ml-100k``) or against the manifest written when the verified zip was
extracted (``ml-1m``), so a truncated or edited file is an error, never a
silently different dataset. The chapter "MovieLens 100k" uses this module.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import re
import shutil
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fmlib.validation import check_bool, check_float

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
ZIP_SHA256 = {
    "ml-100k": "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    "ml-1m": "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
}
# sha256 of the ml-100k files the loader reads (the values GroupLens's zip contains).
ML100K_SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
}
ML1M_FILES = ("ratings.dat", "users.dat", "movies.dat")
MANIFEST = "SHA256SUMS.fmlib"
TIMEOUT = (
    15.0  # seconds: for the name lookup, the connection and each read of the download
)
SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


class MovieLensError(OSError):
    """The MovieLens files could not be found, downloaded or verified."""


class MovieLensTimeout(MovieLensError, TimeoutError):
    """The download server did not answer (resolve, connect or send data) within the timeout."""


AGE_BINS = (0, 18, 25, 35, 45, 50, 56, 200)
AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")


@dataclass
class MovieLens:
    """A loaded MovieLens data set.

    Attributes:
        name: ``"ml-100k"`` or ``"ml-1m"``.
        ratings: ``user``, ``item``, ``rating`` (int 1–5), ``timestamp`` (Unix seconds).
        users: ``user``, ``age``, ``gender``, ``occupation``, ``zip``.
        items: ``item``, ``title``, ``release_date`` (ml-100k) and ``genres``
            (a tuple of genre names per item).
        path: the folder the files were read from.
    """

    name: str
    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    path: Path

    def __repr__(self) -> str:
        return (
            f"MovieLens({self.name!r}: {len(self.ratings)} ratings, {len(self.users)} users, "
            f"{len(self.items)} items)"
        )

    def with_side_features(
        self, ratings: pd.DataFrame, dates: bool = False
    ) -> pd.DataFrame:
        """``ratings`` joined with the user and item attributes the book uses as side features.

        Adds ``age_bucket`` (the seven age groups of ml-1m: ``"<18"``, ``"18-24"``,
        ``"25-34"``, ``"35-44"``, ``"45-49"``, ``"50-55"``, ``"56+"``), ``gender``,
        ``occupation`` and ``genres`` (a tuple per item). With ``dates=True`` also ``day``
        (the day of the rating, ``"YYYY-MM-DD"`` in UTC, from ``timestamp``) and
        ``release_year`` (``"1995"``, or ``"unknown"``; ml-100k only), categories for
        one-hot blocks. Rows keep their order; a rating whose user or item is not in this
        data set is an error, not a dropped row.
        """
        missing = [c for c in ("user", "item") if c not in ratings.columns]
        if missing:
            raise ValueError(
                f"`ratings` must have columns 'user' and 'item'; missing {missing}."
            )
        users = self.users[["user", "age", "gender", "occupation"]].assign(
            age_bucket=lambda d: pd.cut(
                d["age"], AGE_BINS, right=False, labels=AGE_LABELS
            ).astype(str)
        )
        out = ratings.merge(
            users.drop(columns="age"), on="user", how="left", validate="many_to_one"
        )
        out = out.merge(
            self.items[["item", "genres"]],
            on="item",
            how="left",
            validate="many_to_one",
        )
        for col, known in (("gender", "user"), ("genres", "item")):
            unknown = out[col].isna()
            if unknown.any():
                example = out.loc[unknown, known].iloc[0]
                example = example.item() if isinstance(example, np.generic) else example
                raise ValueError(
                    f"`ratings` has {int(unknown.sum())} rows whose {known} is not in "
                    f"{self.name}, e.g. {known}={example!r}."
                )
        if dates:
            out = self._with_dates(out)
        return out

    def _with_dates(self, out: pd.DataFrame) -> pd.DataFrame:
        if "timestamp" not in out.columns:
            raise ValueError(
                "`ratings` needs a 'timestamp' column for dates=True; it has "
                f"{list(out.columns)}."
            )
        if "release_date" not in self.items.columns:
            raise ValueError(
                f"dates=True needs release dates, which {self.name} does not have."
            )
        day = pd.to_datetime(out["timestamp"], unit="s", utc=True).dt.strftime(
            "%Y-%m-%d"
        )
        year = out[["item"]].merge(
            self.items[["item", "release_date"]], on="item", how="left"
        )
        year = year["release_date"].dt.year
        return out.assign(
            day=day.to_numpy(),
            release_year=np.where(
                year.isna(), "unknown", year.fillna(0).astype(int).astype(str)
            ),
        )

    def split(self, fold: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The predefined (train, test) ratings of ``ml-100k``: ``"u1"``…``"u5"``, ``"ua"``, ``"ub"``.

        ``u1``…``u5`` are the five folds of an 80/20 cross-validation whose test sets
        partition the data; ``ua``/``ub`` hold out exactly 10 ratings per user.
        """
        if self.name != "ml-100k":
            raise ValueError(
                f"predefined splits exist for ml-100k only; this is {self.name}."
            )
        if fold not in SPLITS:
            raise ValueError(f"`fold` must be one of {SPLITS}; got {fold!r}.")
        return (
            _read_ratings_100k(self.path / f"{fold}.base"),
            _read_ratings_100k(self.path / f"{fold}.test"),
        )


def default_data_home() -> Path:
    """Where datasets are stored when no ``data_home`` is given and ``FMLIB_DATA`` is unset."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(cache) / "fmlib"


def resolve_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The data home: ``data_home``, else ``$FMLIB_DATA``, else :func:`default_data_home`."""
    if data_home is not None:
        return Path(data_home).expanduser()
    if os.environ.get("FMLIB_DATA"):
        return Path(os.environ["FMLIB_DATA"]).expanduser()
    return default_data_home()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_hashes(name: str, folder: Path) -> dict[str, str]:
    if name == "ml-100k":
        return ML100K_SHA256
    manifest = folder / MANIFEST
    if not manifest.exists():
        raise MovieLensError(
            f"{folder} has no {MANIFEST}, so its files cannot be verified. Remove the folder and "
            f"let fmlib download {BASE_URL}{name}.zip (it checks the zip's sha256 and writes the "
            f"manifest), or put the official {name}.zip in {folder.parent} and load again."
        )
    pairs = (line.split() for line in manifest.read_text().splitlines() if line.strip())
    return {fname: digest for digest, fname in pairs}


def _verify(name: str, folder: Path) -> None:
    for fname, expected in _expected_hashes(name, folder).items():
        path = folder / fname
        if not path.exists():
            raise MovieLensError(
                f"{path} is missing: {folder} is not a complete {name} data set."
            )
        actual = _sha256(path)
        if actual != expected:
            raise MovieLensError(
                f"{path} does not match the official {name} file (sha256 {actual}, expected "
                f"{expected}): it is truncated or edited. Delete {folder} to download it again."
            )


def _extract_all(zip_path: Path, staging: Path) -> None:
    """Extract a zip, refusing unsafe paths; a truncated or corrupt zip is a MovieLensError."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for member in archive.namelist():  # refuse paths that escape the folder
                if member.startswith(("/", "\\")) or ".." in Path(member).parts:
                    raise MovieLensError(
                        f"{zip_path} contains an unsafe path: {member!r}"
                    )
            archive.extractall(staging)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise MovieLensError(
            f"{zip_path} is not a complete zip file ({err}): it matches the "
            "given sha256 but is truncated or corrupt. Delete it and download "
            "the official zip again."
        ) from None


def _resolve(host: str, port: int, timeout: float) -> None:
    """Look ``host`` up in a helper thread: the system resolver has no timeout of its own."""
    outcome: dict = {}

    def lookup():
        try:
            socket.getaddrinfo(host, port)
        except OSError as err:
            outcome["error"] = err

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise MovieLensTimeout(
            f"looking up {host} took more than {timeout} s (no network?)"
        )
    if "error" in outcome:
        raise MovieLensError(f"cannot resolve {host}: {outcome['error']}")


def _fetch(url: str, dest: Path, timeout: float) -> None:
    """Download ``url`` to ``dest``; every wait (lookup, connect, each read) is bounded by ``timeout``."""
    parts = urllib.parse.urlsplit(url)
    _resolve(
        parts.hostname or "",
        parts.port or (443 if parts.scheme == "https" else 80),
        timeout,
    )
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            open(dest, "wb") as out,
        ):
            shutil.copyfileobj(response, out, 1 << 20)
    except urllib.error.URLError as err:  # also HTTPError (404, ...)
        if isinstance(err.reason, TimeoutError):
            raise MovieLensTimeout(
                f"connecting to {parts.netloc} timed out after {timeout} s"
            ) from None
        raise MovieLensError(str(err.reason)) from None
    except TimeoutError:
        raise MovieLensTimeout(
            f"{parts.netloc} accepted the connection but sent no data for {timeout} s"
        ) from None
    except (
        OSError,
        http.client.HTTPException,
    ) as err:  # reset, refused, truncated transfer
        raise MovieLensError(
            f"the transfer failed: {type(err).__name__}: {err}"
        ) from None


def _extract_verified(name: str, zip_path: Path, data_home: Path) -> None:
    """Extract ``zip_path`` into a temporary folder, verify, then move it into place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=data_home))
    try:
        _extract_all(zip_path, staging)
        extracted = staging / name
        if not extracted.is_dir():
            raise MovieLensError(f"{zip_path} does not contain a folder {name}/")
        if name == "ml-1m":  # the zip's checksum vouches for these files: record them
            (extracted / MANIFEST).write_text(
                "".join(
                    f"{_sha256(extracted / f)}  {f}\n"
                    for f in ML1M_FILES
                    if (extracted / f).exists()
                )
            )
        _verify(name, extracted)
        target = data_home / name
        if target.exists():
            raise MovieLensError(
                f"{target} appeared while downloading; remove it and try again."
            )
        os.replace(extracted, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download(
    name: str, data_home: Path, base_url: str, zip_sha256: str, timeout: float
) -> None:
    url = f"{base_url.rstrip('/')}/{name}.zip"
    data_home.mkdir(parents=True, exist_ok=True)
    local_zip = data_home / f"{name}.zip"
    workdir = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=data_home))
    try:
        if (
            local_zip.exists()
        ):  # a zip the user placed there, or left by an earlier download
            zip_path = local_zip
            if _sha256(zip_path) != zip_sha256:
                raise MovieLensError(
                    f"{zip_path} does not have the sha256 of the official {name}.zip "
                    f"({zip_sha256}); delete it and load again to download it."
                )
        else:
            zip_path = workdir / f"{name}.zip"
            try:
                _fetch(url, zip_path, timeout)
            except MovieLensError as err:  # a timeout stays a MovieLensTimeout
                raise type(err)(
                    f"Could not download {name} from {url} ({err}). Without network access, "
                    f"download {url} elsewhere and either unzip it into {data_home} (so that "
                    f"{data_home / name} exists) or put the zip at {local_zip}; or set "
                    f"FMLIB_DATA to a folder that contains {name}/."
                ) from None
            actual = _sha256(zip_path)
            if actual != zip_sha256:
                raise MovieLensError(
                    f"The file downloaded from {url} failed its sha256 check "
                    f"(expected {zip_sha256}, got {actual})."
                )
        _extract_verified(name, zip_path, data_home)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _read_ratings_100k(path: Path) -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep="\t",
        names=["user", "item", "rating", "timestamp"],
        dtype={
            "user": np.int64,
            "item": np.int64,
            "rating": np.int64,
            "timestamp": np.int64,
        },
    )


def _load_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read_ratings_100k(folder / "u.data")
    users = pd.read_csv(
        folder / "u.user",
        sep="|",
        names=["user", "age", "gender", "occupation", "zip"],
        dtype={"user": np.int64, "age": np.int64, "zip": str},
    )
    genre_names = pd.read_csv(
        folder / "u.genre", sep="|", names=["genre", "id"], encoding="latin-1"
    )
    genres = list(genre_names.dropna().sort_values("id")["genre"])
    items = pd.read_csv(
        folder / "u.item",
        sep="|",
        encoding="latin-1",
        header=None,
        names=["item", "title", "release_date", "video_release_date", "imdb_url"]
        + genres,
    )
    flags = items[genres].to_numpy(dtype=bool)
    items = items[["item", "title", "release_date"]].assign(
        release_date=pd.to_datetime(
            items["release_date"], format="%d-%b-%Y", errors="coerce"
        ),
        genres=[tuple(g for g, on in zip(genres, row) if on) for row in flags],
    )
    return ratings, users, items


def _load_1m(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    def read(fname, names):
        text = (folder / fname).read_bytes().decode("latin-1")
        return pd.read_csv(
            io.StringIO(text.replace("::", "\t")),
            sep="\t",
            names=names,
            header=None,
            quoting=3,
        )

    ratings = read("ratings.dat", ["user", "item", "rating", "timestamp"]).astype(
        np.int64
    )
    users = read("users.dat", ["user", "gender", "age", "occupation", "zip"])
    users = users[["user", "age", "gender", "occupation", "zip"]].astype({"zip": str})
    movies = read("movies.dat", ["item", "title", "genres"])
    movies["genres"] = [
        tuple(g.split("|")) if isinstance(g, str) and g else ()
        for g in movies["genres"]
    ]
    return ratings, users, movies


def _check_sha256(digest) -> str:
    """A sha256 as 64 lowercase hex digits (hexdigest's form); any case is accepted."""
    if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest)):
        raise ValueError(f"`zip_sha256` must be 64 hexadecimal digits; got {digest!r}.")
    return digest.lower()


def _checked_home(data_home) -> Path:
    if data_home is not None and not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(
            f"`data_home` must be a path; got {type(data_home).__name__} {data_home!r}."
        )
    home = resolve_data_home(data_home)
    if home.exists() and not home.is_dir():
        source = (
            "`data_home`"
            if data_home is not None
            else (
                "FMLIB_DATA"
                if os.environ.get("FMLIB_DATA")
                else "the default data home"
            )
        )
        raise ValueError(f"{source} must be a folder; {home} is a file.")
    folder_parent = next((p for p in home.parents if p.exists()), None)
    if folder_parent is not None and not folder_parent.is_dir():
        raise ValueError(
            f"the data home {home} lies under {folder_parent}, which is a file."
        )
    return home


def load_movielens(
    name: str = "ml-100k",
    data_home: str | os.PathLike | None = None,
    *,
    download: bool = True,
    base_url: str = BASE_URL,
    zip_sha256: str | None = None,
    timeout: float = TIMEOUT,
) -> MovieLens:
    """Load a MovieLens data set, downloading and verifying it first if needed.

    Args:
        name: ``"ml-100k"`` or ``"ml-1m"``.
        data_home: folder that holds ``<name>/``; see the module docstring for the default.
        download: if False, a missing data set is an error instead of a download.
        base_url: where ``<name>.zip`` is fetched from (GroupLens by default).
        zip_sha256: the expected sha256 of the zip (64 hex digits, either case); the
            official value by default.
        timeout: seconds to wait for the name lookup, the connection and each read of the
            download before giving up with :class:`~fmlib.MovieLensTimeout`.

    Returns:
        A :class:`MovieLens` with ``ratings``, ``users`` and ``items`` tables.

    Raises:
        MovieLensError: the data is missing and cannot be downloaded, or a file does
            not match its checksum. The message says where to put the files.
        fmlib.MovieLensTimeout: (a MovieLensError) the server did not answer within ``timeout``.
        ValueError, TypeError: a bad argument, or a data home that is not a folder.

    Example:
        >>> ml = load_movielens("ml-100k")          # doctest: +SKIP
        >>> len(ml.ratings), len(ml.users), len(ml.items)
        (100000, 943, 1682)
    """
    if not (isinstance(name, str) and name in ZIP_SHA256):
        raise ValueError(f"`name` must be one of {sorted(ZIP_SHA256)}; got {name!r}.")
    download, timeout = (
        check_bool(download, "download"),
        check_float(timeout, "timeout"),
    )
    if timeout == 0:
        raise ValueError("`timeout` must be > 0 seconds; got 0.")
    if not (isinstance(base_url, str) and base_url.startswith(("http://", "https://"))):
        raise ValueError(
            f"`base_url` must be an http:// or https:// URL; got {base_url!r}."
        )
    expected = _check_sha256(ZIP_SHA256[name] if zip_sha256 is None else zip_sha256)
    home = _checked_home(data_home)
    folder = home / name
    if not folder.is_dir():
        if not download:
            raise MovieLensError(
                f"{folder} does not exist and download=False. Download "
                f"{BASE_URL}{name}.zip and unzip it into {home}."
            )
        _download(name, home, base_url, expected, timeout)
    _verify(name, folder)
    ratings, users, items = (_load_100k if name == "ml-100k" else _load_1m)(folder)
    return MovieLens(name=name, ratings=ratings, users=users, items=items, path=folder)
