"""Read files from disk as untrusted input: what kind of file first, then size, then content.

Every file the project reads from a store, a user folder or the committed results is opened
by `open_regular`: regular files only (a FIFO, device or socket is refused without blocking,
a link only where the caller expects one), size bounded before anything is read. Every reader
raises UnsafeFile (a ValueError) with a message naming the file and the problem; nothing here
raises RecursionError, MemoryError or a parser's own exception type.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import threading
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 20
# NumPy parses each .npy header with ast.literal_eval, and CPython 3.11's AST builder keeps its
# depth in state shared by all threads: two threads reading at once (a dashboard's sessions, a
# reader beside a writer) can fail with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905). Our readers take turns.
_NPY_HEADERS = threading.Lock()


class UnsafeFile(ValueError):
    """A file's content is not of the shape or type expected; the message says which and where."""


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}


def open_regular(path: Path, max_bytes: int, follow_links: bool = False) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file of at most `max_bytes`.

    O_NONBLOCK makes the open itself return at once whatever `path` is (a FIFO with no writer
    would block it); O_NOFOLLOW refuses a symbolic link unless `follow_links`. Raises
    UnsafeFile for anything else than a regular file or a file too large, OSError if it
    cannot be opened (missing, permissions).
    """
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            what = "a symbolic link" if not follow_links else "a loop of symbolic links"
            raise UnsafeFile(f"{path.name} is {what}, not a regular file") from None
        if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):  # a socket, a device with no driver
            mode = (path.stat() if follow_links else path.lstat()).st_mode
            raise UnsafeFile(f"{path.name} is {_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, "
                             "not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise UnsafeFile(f"{path.name} is {kind}, not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeFile(f"{path.name} is {info.st_size:,} bytes, more than the {max_bytes:,} allowed")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, max_bytes: int, follow_links: bool = False) -> bytes:
    """The whole of a regular file of at most `max_bytes` (checked again while reading: it may grow)."""
    with open_regular(path, max_bytes, follow_links) as handle:
        content = handle.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise UnsafeFile(f"{Path(path).name} grew past the {max_bytes:,} bytes allowed while read")
    return content


def _depth(text: str) -> int:
    """Deepest nesting of brackets outside strings, counted without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH):
    """JSON from `path`, refused before parsing if larger than `max_bytes` or nested deeper than
    `max_depth`."""
    try:
        text = read_bytes(path, max_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeFile(f"{path.name} is not UTF-8 text") from None
    if _depth(text) > max_depth:
        raise UnsafeFile(f"{path.name} is nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnsafeFile(f"{path.name} is not valid JSON ({exc})") from None


def read_npz(path: Path, expected: dict[str, tuple[str, int]], max_bytes: int,
             follow_links: bool = False) -> dict[str, np.ndarray]:
    """The arrays named in `expected` ({name: (dtype kind letters, ndim)}) from an .npz file.

    Each member's header is read first: its dtype kind and number of dimensions must match
    and its size fit in `max_bytes`, so a forged header cannot make us allocate or unpickle.
    The file may be at most the members' bound together (a member is never larger stored).
    """
    with open_regular(path, len(expected) * max_bytes + (1 << 20), follow_links) as handle, _NPY_HEADERS:
        return _npz_arrays(path, handle, expected, max_bytes)


def _npz_arrays(path: Path, handle: BinaryIO, expected: dict, max_bytes: int) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(handle) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            missing = sorted(set(expected) - set(members))
            if missing:
                raise UnsafeFile(f"{path.name} lacks {', '.join(missing)}")
            for name, (kinds, ndim) in expected.items():
                with archive.open(members[name]) as member:
                    shape, dtype = _header(member)
                if dtype.kind not in kinds or dtype.hasobject or len(shape) != ndim:
                    raise UnsafeFile(f"{path.name}: {name} has dtype {dtype} and {len(shape)} "
                                     f"dimension(s), expected {ndim} of a dtype of kind {kinds!r}")
                if math.prod(shape) * dtype.itemsize > max_bytes:
                    raise UnsafeFile(f"{path.name}: {name} claims shape {shape}, too large")
        handle.seek(0)
        with np.load(handle, allow_pickle=False) as npz:
            return {name: npz[name] for name in expected}
    except UnsafeFile:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, MemoryError) as exc:
        raise UnsafeFile(f"{path.name} is not a readable .npz file ({type(exc).__name__}: {exc})") from None


def _header(handle) -> tuple[tuple[int, ...], np.dtype]:
    major, _ = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(handle)
    return shape, dtype
