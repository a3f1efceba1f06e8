"""Read files from disk as untrusted input: sizes bounded before parsing, types checked after.

Every reader raises UnsafeFile (a ValueError) with a message naming the file and the problem;
nothing here raises RecursionError, MemoryError or a parser's own exception type.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 20


class UnsafeFile(ValueError):
    """A file's content is not of the shape or type expected; the message says which and where."""


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
    size = path.stat().st_size
    if size > max_bytes:
        raise UnsafeFile(f"{path.name} is {size:,} bytes, more than the {max_bytes:,} allowed")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeFile(f"{path.name} is not UTF-8 text") from None
    if _depth(text) > max_depth:
        raise UnsafeFile(f"{path.name} is nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnsafeFile(f"{path.name} is not valid JSON ({exc})") from None


def read_npz(path: Path, expected: dict[str, tuple[str, int]], max_bytes: int) -> dict[str, np.ndarray]:
    """The arrays named in `expected` ({name: (dtype kind letters, ndim)}) from an .npz file.

    Each member's header is read first: its dtype kind and number of dimensions must match
    and its size fit in `max_bytes`, so a forged header cannot make us allocate or unpickle.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {name.removesuffix(".npy"): name for name in archive.namelist()}
            missing = sorted(set(expected) - set(members))
            if missing:
                raise UnsafeFile(f"{path.name} lacks {', '.join(missing)}")
            for name, (kinds, ndim) in expected.items():
                with archive.open(members[name]) as handle:
                    shape, dtype = _header(handle)
                if dtype.kind not in kinds or dtype.hasobject or len(shape) != ndim:
                    raise UnsafeFile(f"{path.name}: {name} has dtype {dtype} and {len(shape)} "
                                     f"dimension(s), expected {ndim} of a dtype of kind {kinds!r}")
                if math.prod(shape) * dtype.itemsize > max_bytes:
                    raise UnsafeFile(f"{path.name}: {name} claims shape {shape}, too large")
        with np.load(path, allow_pickle=False) as npz:
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
