"""Get MNIST: download Keras's mnist.npz, check it, and keep it where load_mnist() looks.

The file is streamed into a temporary file beside its destination, its sha256 checked against
the published one, its arrays validated like any MNIST (and their fingerprint checked against
standard MNIST's), and only then renamed into place: a failed or interrupted download leaves
nothing that looks like MNIST.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import data
from .data import STANDARD_FINGERPRINT, MNISTError, read_mnist
from .safe_read import read_bytes
from .safe_write import replacing

KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
URL_ENV_VAR = "MNIST_LAB_DOWNLOAD_URL"  # a mirror (or, in tests, a local server)
SHA256_ENV_VAR = "MNIST_LAB_DOWNLOAD_SHA256"  # the mirror's file hash, if its file differs
SIZE_MB = 11
MAX_BYTES = 64 << 20  # mnist.npz is 11 MB: more than this is not it
STALL_S = 30  # give up when no byte has come for this long
DEADLINE_S = 900  # give up when the whole download has taken this long (11 MB at 12 kB/s)


def download_mnist(target: Path | None = None,
                   progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download MNIST to `target` (default: the user data folder load_mnist() reads); returns it.

    `progress(bytes_so_far, total_or_None)` is called as the download goes. Raises MNISTError
    with what went wrong (a bad URL, offline, a stalled or endless server, wrong file, disk
    full) in one line, and leaves no partial file.
    """
    url = os.environ.get(URL_ENV_VAR) or KERAS_URL
    expected = (os.environ.get(SHA256_ENV_VAR) or KERAS_SHA256).lower()
    _check_url(url)
    target = Path(target or data.DOWNLOADED).expanduser().absolute()

    def verify(temporary: Path) -> None:
        """The file as written to disk is the one published, and standard MNIST."""
        digest = hashlib.sha256(read_bytes(temporary, MAX_BYTES)).hexdigest()
        if digest != expected:
            raise MNISTError(f"the file from {url} has sha256 {digest}, expected {expected}: it is not "
                             "MNIST's mnist.npz (set MNIST_PATH to a copy you trust instead)")
        if read_mnist(temporary).fingerprint != STANDARD_FINGERPRINT:
            raise MNISTError(f"the file from {url} holds arrays other than standard MNIST's")

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing(target, verify=verify) as out:
            _fetch(url, out, progress)
    except urllib.error.HTTPError as exc:
        raise MNISTError(f"could not download MNIST from {url} (HTTP {exc.code}: {_first_line(exc.reason)}); "
                         "check the address, or set MNIST_PATH to a local mnist.npz") from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise MNISTError(f"could not download MNIST from {url} ({_first_line(getattr(exc, 'reason', exc))}); "
                         "check the network, or set MNIST_PATH to a local mnist.npz") from None
    except OSError as exc:
        what = "free some space" if exc.errno == errno.ENOSPC else "choose a folder you can write (--to)"
        raise MNISTError(f"could not save MNIST to {target.parent} ({exc.strerror or exc}); {what}, or "
                         "set MNIST_PATH to a local mnist.npz") from None
    return target


def _check_url(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise MNISTError(f"{URL_ENV_VAR}={url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MNISTError(f"{URL_ENV_VAR}={url!r} is not an http(s) URL; set it to e.g. "
                         "https://mirror.example/mnist.npz, or unset it")


def _first_line(reason) -> str:
    lines = str(reason).strip().splitlines()
    return lines[0] if lines else type(reason).__name__


class Deadline:
    """One wall-clock deadline over every phase of a download (connect, each redirect, the
    headers, the body): each connection's socket is shut down when it passes, which ends any
    read or write blocked on it, however the server paces its bytes (a header byte every few
    seconds, an endless run of "100 Continue")."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._timers: list[threading.Timer] = []

    def watch(self, sock) -> None:
        def expire():
            self.expired = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(max(0.0, self.ends - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def check(self, done: int = 0) -> None:
        if self.expired or time.monotonic() > self.ends:
            raise TimeoutError(f"the download took more than {self.seconds:g} s ({done:,} bytes so far)")

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()


def _opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """urllib's opener, its connections watched by `deadline`."""

    def watched(base):
        class Connection(base):
            def connect(self):
                deadline.check()
                super().connect()
                deadline.watch(self.sock)
        return Connection

    plain, secure = watched(http.client.HTTPConnection), watched(http.client.HTTPSConnection)

    class Plain(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(plain, req)

    class Secure(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(secure, req, context=self._context)

    return urllib.request.build_opener(Plain, Secure)


def _fetch(url: str, out, progress) -> None:
    """Stream `url` into `out`. Gives up (TimeoutError) when no byte comes for STALL_S seconds
    (from the request on: the socket's timeout) or the whole, connect to last byte, takes
    DEADLINE_S."""
    deadline = Deadline(DEADLINE_S)
    try:
        _stream(url, out, progress, deadline)
    except (OSError, http.client.HTTPException):
        deadline.check()  # the deadline's shutdown is what ended it: say so, not what broke
        raise
    finally:
        deadline.cancel()
    deadline.check()


def _stream(url: str, out, progress, deadline: Deadline) -> None:
    try:
        response = _opener(deadline).open(url, timeout=STALL_S)
    except ValueError as exc:  # urllib's word for an address it cannot use
        raise MNISTError(f"{URL_ENV_VAR}={url!r} cannot be downloaded ({exc})") from None
    with response:
        try:
            total = int(response.headers.get("Content-Length") or 0) or None
        except ValueError:
            total = None  # a malformed length: count what comes instead
        if total and total > MAX_BYTES:
            raise MNISTError(f"{url} offers {total:,} bytes; mnist.npz is about {SIZE_MB} MB")
        done = 0
        while block := response.read1(1 << 16):
            done += len(block)
            if done > MAX_BYTES:
                raise MNISTError(f"{url} sent more than {MAX_BYTES:,} bytes; mnist.npz is about "
                                 f"{SIZE_MB} MB")
            deadline.check(done)
            out.write(block)
            if progress:
                progress(done, total)
