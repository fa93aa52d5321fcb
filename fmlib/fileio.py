r"""Writing files so that a failure never loses the previous one; floats as text that read back exactly.

Every file the library writes (a saved model, a SavedModel directory, a libFM file, a results
file) goes through this module:

* :func:`atomic_write` opens a temporary file *in the target's folder*, hands it to the
  caller, and only when the caller has written everything flushes it, ``fsync`` s it and
  renames it onto the target with ``os.replace`` (atomic on POSIX and Windows within one
  file system). An exception, a full disk or Ctrl-C while writing removes the temporary
  file and leaves the previous file as it was; a reader never sees a half-written file.
* :func:`atomic_directory` does the same for a directory (a TensorFlow SavedModel): the new
  directory is built beside the target and swapped in; the old one is removed only after
  the new one is in place.
* :func:`format_float` writes a float with the fewest digits that read back as exactly the same
  float64 (Python's ``repr``, shortest round trip; ``%.17g`` would do too, with more digits).

This module is the bottom layer of fmlib: it imports nothing from the library.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from typing import IO, Iterator

__all__ = [
    "atomic_write",
    "atomic_path",
    "atomic_directory",
    "write_text",
    "write_bytes",
    "format_float",
    "check_writable_target",
]


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    """The permissions a plain ``open(path, "w")`` would give a new file (0o666 minus the umask)."""
    return 0o666 & ~_umask()


def check_writable_target(path, name: str = "path", directory: bool = False) -> str:
    """``path`` as a string if a file (or, with ``directory``, a directory) can be written there.

    A clear error otherwise, naming the argument and the path: ``TypeError`` for a path that is
    not a string or ``os.PathLike``; ``IsADirectoryError`` when a file is to replace a folder;
    ``NotADirectoryError`` when a directory is to replace a file; ``FileNotFoundError`` when
    the folder does not exist; ``PermissionError`` when the folder cannot be written.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a path (str or os.PathLike); got {type(path).__name__}."
        )
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError(f"`{name}` must be a path; got an empty string.")
    if directory and os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(
            f"`{name}`: {path!r} is a file, not a directory; a SavedModel is a "
            "directory. Choose another path or remove the file."
        )
    if not directory and os.path.isdir(path):
        raise IsADirectoryError(
            f"`{name}`: {path!r} is a directory; expected a file path."
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"`{name}`: the folder {folder!r} of {path!r} does not exist."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"`{name}`: the folder {folder!r} is not writable, so {path!r} "
            "cannot be written."
        )
    return path


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path, mode: str = "w", encoding: str | None = "utf-8", name: str = "path"
) -> Iterator[IO]:
    """Write ``path`` all at once: ``with atomic_write(p, "wb") as f: f.write(...)``.

    The caller writes to a temporary file in the target's folder; when the ``with`` block ends
    without an exception the file is flushed, synced and renamed onto ``path``. If the block
    raises (or is interrupted), the temporary file is removed and ``path`` is untouched.

    Args:
        path: the file to write (replaced if it exists; its permissions are kept).
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: the text encoding (``"w"`` only).
        name: the argument's name for error messages.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb'; got {mode!r}.")
    path = check_writable_target(path, name)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode_bits = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode_bits = _default_mode()
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
    )
    try:
        with os.fdopen(
            fd, mode, **({"encoding": encoding, "newline": ""} if mode == "w" else {})
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode_bits)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


@contextlib.contextmanager
def atomic_path(path, name: str = "path") -> Iterator[str]:
    """For writers that need a file *name* (``tf.io.TFRecordWriter``): ``with atomic_path(p) as
    tmp: write(tmp)``; the temporary file, in the target's folder, replaces ``path`` when the
    block ends without an exception and is removed otherwise."""
    path = check_writable_target(path, name)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        mode_bits = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode_bits = _default_mode()
    fd, tmp = tempfile.mkstemp(
        dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
    )
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode_bits)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def write_bytes(path, data: bytes, name: str = "path") -> str:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`); returns the path."""
    with atomic_write(path, "wb", name=name) as handle:
        handle.write(data)
    return os.fsdecode(os.fspath(path))


def write_text(path, text: str, encoding: str = "utf-8", name: str = "path") -> str:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`); returns the path."""
    with atomic_write(path, "w", encoding=encoding, name=name) as handle:
        handle.write(text)
    return os.fsdecode(os.fspath(path))


@contextlib.contextmanager
def atomic_directory(path, name: str = "path") -> Iterator[str]:
    """Build a directory at ``path`` all at once: ``with atomic_directory(p) as tmp: write into tmp``.

    The caller fills a fresh temporary directory beside ``path``; when the block ends without an
    exception it replaces ``path``: a missing or empty target is replaced by one rename; an
    existing directory is first renamed aside, the new one renamed into place, then the old one
    removed. If the block raises, the temporary directory is removed and ``path`` is untouched.
    """
    path = check_writable_target(path, name, directory=True)
    path = path.rstrip(os.sep) or path
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(os.path.abspath(path))
    tmp = tempfile.mkdtemp(dir=folder, prefix="." + base + ".", suffix=".tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # as os.mkdir would (mkdtemp gives 0o700)
        if os.path.isdir(path):
            old = tempfile.mkdtemp(dir=folder, prefix="." + base + ".", suffix=".old")
            os.rmdir(old)
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the previous directory back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_folder(folder)


def format_float(value) -> str:
    """``value`` as the shortest text that reads back (``float(text)``) as exactly the same float64.

    Integral values lose the trailing ``.0`` (``1.0`` -> ``"1"``), as in libFM files; NaN and
    infinities are refused (a text format cannot promise to read them back everywhere).
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"format_float: expected a finite number; got {value!r}.")
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    return text
