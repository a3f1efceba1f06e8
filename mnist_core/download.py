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
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from . import data
from .data import STANDARD_FINGERPRINT, MNISTError, read_mnist

KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
URL_ENV_VAR = "MNIST_LAB_DOWNLOAD_URL"  # a mirror (or, in tests, a local server)
SHA256_ENV_VAR = "MNIST_LAB_DOWNLOAD_SHA256"  # the mirror's file hash, if its file differs
SIZE_MB = 11
TIMEOUT_S = 30
MAX_BYTES = 64 << 20  # mnist.npz is 11 MB: more than this is not it


def download_mnist(target: Path | None = None,
                   progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download MNIST to `target` (default: the user data folder load_mnist() reads); returns it.

    `progress(bytes_so_far, total_or_None)` is called as the download goes. Raises MNISTError
    with what went wrong (offline, wrong file, disk full) and leaves no partial file.
    """
    url = os.environ.get(URL_ENV_VAR) or KERAS_URL
    expected = (os.environ.get(SHA256_ENV_VAR) or KERAS_SHA256).lower()
    target = Path(target or data.DOWNLOADED).expanduser().absolute()
    partial = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = _fetch(url, partial, progress)
        if digest != expected:
            raise MNISTError(f"the file from {url} has sha256 {digest}, expected {expected}: it is not "
                             "MNIST's mnist.npz (set MNIST_PATH to a copy you trust instead)")
        if read_mnist(partial).fingerprint != STANDARD_FINGERPRINT:
            raise MNISTError(f"the file from {url} holds arrays other than standard MNIST's")
        os.replace(partial, target)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise MNISTError(f"could not download MNIST from {url} ({getattr(exc, 'reason', exc)}); check "
                         "the network, or set MNIST_PATH to a local mnist.npz") from None
    except OSError as exc:
        raise MNISTError(f"could not save MNIST to {target.parent} ({exc.strerror or exc}); free some "
                         "space or set MNIST_PATH to a local mnist.npz") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def _fetch(url: str, path: Path, progress) -> str:
    """Stream `url` into `path`; returns the sha256 of what was written."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(path, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total and total > MAX_BYTES:
            raise MNISTError(f"{url} offers {total:,} bytes; mnist.npz is about {SIZE_MB} MB")
        done = 0
        while block := response.read(1 << 16):
            done += len(block)
            if done > MAX_BYTES:
                raise MNISTError(f"{url} sent more than {MAX_BYTES:,} bytes; mnist.npz is about "
                                 f"{SIZE_MB} MB")
            out.write(block)
            digest.update(block)
            if progress:
                progress(done, total)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()
