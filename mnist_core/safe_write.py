"""Write files so a reader sees the old content or the new, never half, and nothing else is touched.

The one way the project replaces a file (runs' notes, jobs' states, lock owner notes, verdicts,
the neighbours subset, the downloaded MNIST): a temporary file created exclusively in the
target's folder without following links, written, fsynced and renamed over the target. It
is removed on any failure or interruption; one left by a writer killed outright (kill -9) is
removed by the next writer of the same target. A target that exists but this process cannot read
is someone else's and is never replaced; a link at the target is replaced as a link, never
written through.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import socket
import stat
import time
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


HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
STALE_ELSEWHERE_S = 24 * 3600  # a temporary of another host's writer: removed once this old
# what follows ".TARGET." in a temporary's name: ours (host-pid.random), or the older random only
TEMPORARY = re.compile(r"^(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,9})\.)?[0-9a-f]{12}\.tmp$")


def _create_beside(path: Path, mode: int) -> tuple[Path, int]:
    """A new temporary beside `path`, named by this host and process, so that a later writer of
    the same target can tell a temporary whose writer has died (kill -9) and remove it."""
    _remove_stale_temporaries(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        temporary = path.with_name(f".{path.name}.{HOST}-{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            return temporary, os.open(temporary, flags, mode)
        except FileExistsError:
            continue  # a name taken (or planted): draw another


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of `path` left by writers that died: on this host, those whose
    process is gone; from elsewhere (or of an older naming), those a day old. Only regular
    files named as ours are touched, never followed through a link."""
    prefix = f".{path.name}."
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        found = TEMPORARY.match(name[len(prefix):])
        if not found:
            continue  # another target's, or not ours
        leftover = path.parent / name
        try:
            info = leftover.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            if found["host"] == HOST:
                if _alive(int(found["pid"])):
                    continue
            elif time.time() - info.st_mtime < STALE_ELSEWHERE_S:
                continue
            leftover.unlink()
        except OSError:
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
