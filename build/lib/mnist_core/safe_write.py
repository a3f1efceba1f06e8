"""Write files so a reader sees the old content or the new, never half, and nothing else is touched.

The one way the project replaces a file (runs' notes, jobs' states, lock owner notes, verdicts,
the neighbours subset, the downloaded MNIST): a temporary file created exclusively in the
target's folder without following links, written, fsynced and renamed over the target. It
is removed on any failure or interruption. A target that exists but this process cannot read
is someone else's and is never replaced; a link at the target is replaced as a link, never
written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


class NotReplaced(PermissionError):
    """The target exists but this process cannot read it: it is left as it is."""


def check_replaceable(path: Path) -> None:
    """Raise NotReplaced if `path` exists and cannot be read here (another user's private file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return  # a link: the rename replaces the link itself, never what it points to
        raise NotReplaced(f"{path} exists but cannot be read here ({exc.strerror}); it was left as "
                          "it is: ask its owner to make it readable, or use another folder") from None
    os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: int = 0o666,
              verify: Callable[[Path], None] | None = None) -> Iterator[BinaryIO]:
    """A new file to write `path`'s content into; renamed over `path` when the block ends without
    error (and `verify(temporary_path)` raises nothing), removed otherwise. `mode` is narrowed
    by the umask, as for any new file."""
    path = Path(path)
    check_replaceable(path)
    temporary, fd = _create_beside(path, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if verify is not None:
            verify(temporary)
        check_replaceable(path)  # it may have appeared meanwhile
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | os.PathLike, content: bytes | str, mode: int = 0o666) -> None:
    """Replace `path` with `content` (text is written as UTF-8)."""
    with replacing(path, mode) as out:
        out.write(content.encode("utf-8") if isinstance(content, str) else content)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` survive a crash (best effort: some filesystems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_beside(path: Path, mode: int) -> tuple[Path, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return temporary, os.open(temporary, flags, mode)
        except FileExistsError:
            continue  # a name taken (or planted): draw another
