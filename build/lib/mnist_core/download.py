"""Get MNIST: download Keras's mnist.npz, check it, and keep it where load_mnist() looks.

The file is streamed into a temporary file beside its destination, its sha256 checked against
the published one, its arrays validated like any MNIST (and their fingerprint checked against
standard MNIST's), and only then renamed into place: a failed or interrupted download leaves
nothing that looks like MNIST.
"""

from __future__ import annotations

import hashlib
import http.client
import os
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
        raise MNISTError(f"could not save MNIST to {target.parent} ({exc.strerror or exc}); free some "
                         "space or set MNIST_PATH to a local mnist.npz") from None
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


def _fetch(url: str, out, progress) -> None:
    """Stream `url` into `out`. Gives up (TimeoutError) when no byte comes for STALL_S seconds
    or the whole takes DEADLINE_S."""
    started = time.monotonic()
    try:
        response = urllib.request.urlopen(url, timeout=STALL_S)
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
            if time.monotonic() - started > DEADLINE_S:
                raise TimeoutError(f"the download took more than {DEADLINE_S} s ({done:,} bytes so far)")
            out.write(block)
            if progress:
                progress(done, total)
