import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_core import data as data_module
from mnist_core.data import STANDARD_FINGERPRINT, MNISTError, load_mnist


def write_idx(path, array, gz):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:  # the fastest level: what is tested is reading gzip, not how well it packs (9 took 13 s)
        with gzip.open(path, "wb", compresslevel=1) as handle:
            handle.write(payload)
    else:
        with open(path, "wb") as handle:
            handle.write(payload)


def write_npz(path, mnist, **changes):
    arrays = {n: getattr(mnist, n) for n in ("x_train", "y_train", "x_test", "y_test")}
    arrays.update(changes)
    np.savez_compressed(path, **arrays)


def test_real_split(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_test.dtype == np.uint8
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist.fingerprint == STANDARD_FINGERPRINT


def test_arrays_are_read_only(mnist):
    with pytest.raises(ValueError):
        mnist.x_train[0, 0, 0] = 1


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_gives_same_arrays_and_fingerprint(tmp_path, mnist, gz):
    for name, stem in data_module.IDX_FILES.items():
        write_idx(tmp_path / (stem + (".gz" if gz else "")), getattr(mnist, name), gz)
    loaded = load_mnist(tmp_path)
    assert np.array_equal(loaded.x_train, mnist.x_train)
    assert np.array_equal(loaded.y_test, mnist.y_test)
    assert loaded.fingerprint == mnist.fingerprint


def test_env_var_and_keras_cache(tmp_path, mnist, monkeypatch):
    copy = tmp_path / "copy.npz"
    shutil.copy(mnist.source, copy)
    monkeypatch.setenv("MNIST_PATH", str(copy))
    assert load_mnist().source == str(copy.resolve())
    monkeypatch.delenv("MNIST_PATH")
    monkeypatch.setattr(data_module, "KERAS_CACHE", copy)
    assert load_mnist().fingerprint == mnist.fingerprint


def test_explicit_path_beats_env_var(tmp_path, mnist, monkeypatch):
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "nowhere.npz"))
    assert load_mnist(mnist.source).fingerprint == mnist.fingerprint


def test_missing_file_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "nowhere.npz"))
    with pytest.raises(MNISTError, match="MNIST_PATH"):
        load_mnist()


def test_truncated_npz_is_rejected(tmp_path, mnist):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(open(mnist.source, "rb").read()[:100_000])
    with pytest.raises(MNISTError, match="not a readable .npz"):
        load_mnist(bad)


def test_garbage_file_is_rejected(tmp_path):
    bad = tmp_path / "mnist.npz"
    bad.write_text("hello")
    with pytest.raises(MNISTError, match="MNIST_PATH"):
        load_mnist(bad)


@pytest.mark.parametrize("change, message", [
    ({"x_train": np.zeros((100, 28, 28), np.uint8)}, "shape"),
    ({"x_test": np.zeros((10000, 28, 28), np.float32)}, "dtype"),
    ({"y_test": np.full(10000, 12, np.uint8)}, "label 12"),
])
def test_wrong_arrays_are_rejected(tmp_path, mnist, change, message):
    bad = tmp_path / "wrong.npz"
    write_npz(bad, mnist, **change)
    with pytest.raises(MNISTError, match=message):
        load_mnist(bad)


def test_npz_missing_an_array(tmp_path, mnist):
    bad = tmp_path / "partial.npz"
    np.savez(bad, x_train=mnist.x_train)
    with pytest.raises(MNISTError, match="lacks"):
        load_mnist(bad)


def test_pickled_npz_is_refused(tmp_path):
    bad = tmp_path / "pickled.npz"
    np.savez(bad, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1),
             x_test=np.zeros(1), y_test=np.zeros(1))
    with pytest.raises(MNISTError):
        load_mnist(bad)


def test_idx_bad_magic_and_truncation(tmp_path, mnist):
    for name, stem in data_module.IDX_FILES.items():
        write_idx(tmp_path / stem, getattr(mnist, name), gz=False)
    labels = tmp_path / data_module.IDX_FILES["y_test"]
    labels.write_bytes(labels.read_bytes()[:-10])
    with pytest.raises(MNISTError, match="truncated"):
        load_mnist(tmp_path)
    labels.write_bytes(b"\x01\x02\x03\x04" + b"\x00" * 20)
    with pytest.raises(MNISTError, match="magic"):
        load_mnist(tmp_path)


def test_idx_folder_missing_file(tmp_path):
    with pytest.raises(MNISTError, match="IDX"):
        load_mnist(tmp_path)


def idx_folder(folder, mnist, gz=False):
    for name, stem in data_module.IDX_FILES.items():
        write_idx(folder / stem, getattr(mnist, name), gz=gz)
    return folder


def raw_header(*dims, ndim=None):
    return bytes([0, 0, 0x08, ndim if ndim is not None else len(dims)]) + b"".join(
        d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize("header, message", [
    (raw_header(2**32 - 1, 2**32 - 1, 2**32 - 1), "holds shape"),  # product past 2**64 wraps to 0
    (raw_header(1, ndim=255) + b"\0" * 1016, "255 dimensions"),
    (raw_header(60000, 28, 29), "holds shape"),
], ids=["dimensions overflow", "255 dimensions", "wrong shape"])
def test_idx_headers_are_checked_before_any_data_is_read(tmp_path, mnist, header, message):
    folder = idx_folder(tmp_path, mnist)
    (folder / data_module.IDX_FILES["x_train"]).write_bytes(header)
    with pytest.raises(MNISTError, match=message):
        load_mnist(folder)


def test_a_huge_sparse_idx_file_is_refused_by_its_size(tmp_path, mnist):
    folder = idx_folder(tmp_path, mnist)
    images = folder / data_module.IDX_FILES["x_train"]
    with open(images, "r+b") as handle:
        handle.truncate(100 * 2**30)  # 100 GB, sparse: reading it would take minutes and all memory
    with pytest.raises(MNISTError, match="more than the 67,108,864 allowed"):
        load_mnist(folder)


def test_a_gzipped_idx_with_extra_data_is_refused(tmp_path, mnist):
    folder = tmp_path
    for name, stem in data_module.IDX_FILES.items():
        write_idx(folder / f"{stem}.gz", getattr(mnist, name), gz=True)
    labels = folder / f"{data_module.IDX_FILES['y_test']}.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes()) + b"\0" * 100))
    with pytest.raises(MNISTError, match="truncated or padded"):
        load_mnist(folder)


@pytest.mark.parametrize("change, message", [
    ({"x_train": np.zeros((60000, 28, 28), np.uint8), "x_test": np.zeros((10000, 28, 28), np.uint8)},
     "blank"),
    ({"y_train": np.zeros(60000, np.uint8)}, "digit 1"),
    ({"y_test": np.full(10000, 3, np.uint8)}, "digit 0"),
])
def test_data_that_is_not_mnist_is_refused(tmp_path, mnist, change, message):
    fake = tmp_path / "fake.npz"
    write_npz(fake, mnist, **change)
    with pytest.raises(MNISTError, match=message):
        load_mnist(fake)


def test_an_npz_whose_header_claims_a_huge_array_is_refused(tmp_path, mnist):
    fake = tmp_path / "huge.npz"
    with zipfile.ZipFile(fake, "w") as archive:
        for name in ("x_train", "y_train", "y_test"):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, getattr(mnist, name))
            archive.writestr(f"{name}.npy", buffer.getvalue())
        buffer = io.BytesIO()  # a header claiming 60 billion images, and no data behind it
        np.lib.format.write_array_header_1_0(
            buffer, {"descr": "|u1", "fortran_order": False, "shape": (60_000_000_000, 28, 28)})
        archive.writestr("x_test.npy", buffer.getvalue())
    with pytest.raises(MNISTError, match="too large"):
        load_mnist(fake)


def test_cli_refuses_an_all_zero_mnist_with_exit_2_and_one_line(tmp_path, mnist):
    fake = tmp_path / "zeros.npz"
    write_npz(fake, mnist, x_train=np.zeros((60000, 28, 28), np.uint8),
              x_test=np.zeros((10000, 28, 28), np.uint8))
    result = subprocess.run([sys.executable, "-m", "mnist_core", "train", "--epochs", "1", "--limit", "100",
                             "--data", str(fake), "--store", str(tmp_path / "store")],
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("python -m mnist_core train: error:")
    assert "blank" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def mirror(tmp_path, mnist):
    from tests.browser import file_server

    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copy(mnist.source, folder / "mnist.npz")
    (folder / "not-mnist.npz").write_bytes(b"PK" + b"\0" * 1000)
    with file_server(folder) as url:
        yield url, hashlib.sha256((folder / "mnist.npz").read_bytes()).hexdigest()


def test_download_checks_the_file_and_renames_it_into_place(tmp_path, mnist, mirror, monkeypatch):
    from mnist_core.download import download_mnist

    url, sha256 = mirror
    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_URL", f"{url}/mnist.npz")
    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_SHA256", sha256)
    seen = []
    path = download_mnist(tmp_path / "data" / "mnist.npz", progress=lambda done, total: seen.append(done))
    assert load_mnist(path).fingerprint == mnist.fingerprint
    assert seen[-1] == path.stat().st_size and list(path.parent.iterdir()) == [path]


@pytest.mark.parametrize("file, sha256, message", [
    ("mnist.npz", "0" * 64, "has sha256"),
    ("missing.npz", None, "could not download MNIST .*not found"),
])
def test_a_failed_download_says_why_and_leaves_nothing(tmp_path, mirror, monkeypatch, file, sha256, message):
    from mnist_core.download import download_mnist

    url, good = mirror
    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_URL", f"{url}/{file}")
    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_SHA256", sha256 or good)
    with pytest.raises(MNISTError, match=re.compile(message, re.IGNORECASE)):
        download_mnist(tmp_path / "data" / "mnist.npz")
    assert list((tmp_path / "data").iterdir()) == []


def test_download_with_no_server_and_with_a_full_disk(tmp_path, mirror, monkeypatch):
    import errno

    from mnist_core import download

    url, sha256 = mirror
    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_URL", "http://127.0.0.1:9/mnist.npz")  # nothing listens
    with pytest.raises(MNISTError, match="could not download MNIST .*refused"):
        download.download_mnist(tmp_path / "a" / "mnist.npz")
    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_URL", f"{url}/mnist.npz")
    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_SHA256", sha256)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download.os, "fsync", full)
    with pytest.raises(MNISTError, match="No space left on device"):
        download.download_mnist(tmp_path / "b" / "mnist.npz")
    assert list((tmp_path / "b").iterdir()) == []


def test_cli_data_download_and_its_failure(tmp_path, mirror):
    url, sha256 = mirror
    env = {**os.environ, "MNIST_LAB_DOWNLOAD_URL": f"{url}/mnist.npz", "MNIST_LAB_DOWNLOAD_SHA256": sha256}
    repo = Path(__file__).resolve().parent.parent
    ok = subprocess.run([sys.executable, "-m", "mnist_core", "data", "download", "--to",
                         str(tmp_path / "m.npz"), "--quiet"], cwd=repo, env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0 and "MNIST saved to" in ok.stdout, ok.stderr
    env["MNIST_LAB_DOWNLOAD_SHA256"] = "0" * 64
    bad = subprocess.run([sys.executable, "-m", "mnist_core", "data", "download", "--to",
                          str(tmp_path / "n.npz")], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "python -m mnist_core data: error: the file from")
    assert not (tmp_path / "n.npz").exists()


class Hostile:
    """A local server that misbehaves as the path says: a malformed length, a drip, silence,
    a redirect to itself."""

    def __init__(self, payload: bytes):
        import http.server
        import threading
        import time

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/bad-length":
                    self.send_response(200)
                    self.send_header("Content-Length", "abc")
                    self.end_headers()
                    self.wfile.write(outer.payload)
                    self.close_connection = True
                elif self.path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.end_headers()
                elif self.path == "/drip-headers":  # a byte of its headers every 0.5 s
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Slow: " + b"y" * 600:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.5)
                elif self.path == "/continue":  # "100 Continue", again and again
                    for _ in range(600):
                        self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                        self.wfile.flush()
                        time.sleep(0.3)
                elif self.path in ("/drip", "/silent"):
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    for _ in range(600 if self.path == "/drip" else 1):
                        if self.path == "/drip":
                            self.wfile.write(b"x")
                            self.wfile.flush()
                        time.sleep(0.2 if self.path == "/drip" else 20)

        self.payload = payload
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def hostile(mnist):
    server = Hostile(Path(mnist.source).read_bytes())
    yield server
    server.server.shutdown()


def download_cli(tmp_path, url, *args, **options):
    env = {**os.environ, "MNIST_LAB_DOWNLOAD_URL": url}
    return subprocess.run([sys.executable, "-m", "mnist_core", "data", "download", "--quiet", *args],
                          cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True,
                          text=True, timeout=120, **options)


@pytest.mark.parametrize("url, says", [
    ("not a url", "is not an http(s) URL"),
    ("http://[::1", "is not a valid URL"),
    ("http://127.0.0.1:99999/x", "is not a valid URL"),
    ("LOOP", "HTTP 302"),
])
def test_bad_download_addresses_are_one_line_exit_2_and_leave_nothing(tmp_path, hostile, url, says):
    result = download_cli(tmp_path, hostile.url + "/loop" if url == "LOOP" else url,
                          "--to", str(tmp_path / "m" / "mnist.npz"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").iterdir()) == []


def test_a_download_to_a_path_under_a_file_is_one_line(tmp_path, hostile):
    (tmp_path / "file").write_text("x")
    result = download_cli(tmp_path, hostile.url + "/bad-length", "--to", str(tmp_path / "file" / "mnist.npz"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "could not save MNIST" in result.stderr


def test_a_malformed_content_length_is_ignored(tmp_path, hostile, monkeypatch):
    from mnist_core.download import download_mnist

    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_URL", hostile.url + "/bad-length")
    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_SHA256", hashlib.sha256(hostile.payload).hexdigest())
    path = download_mnist(tmp_path / "mnist.npz")
    assert path.read_bytes() == hostile.payload and list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("path, setting, says", [
    ("/drip", "DEADLINE_S", "took more than 2 s"),
    ("/drip-headers", "DEADLINE_S", "took more than 2 s"),  # the headers alone outlast the deadline
    ("/continue", "DEADLINE_S", "took more than 2 s"),
    ("/silent", "STALL_S", "timed out"),
])
def test_a_dripping_or_silent_server_is_given_up_on(tmp_path, hostile, monkeypatch, path, setting, says):
    from mnist_core import download

    monkeypatch.setenv("MNIST_LAB_DOWNLOAD_URL", hostile.url + path)
    monkeypatch.setattr(download, setting, 2)
    started = time.monotonic()
    with pytest.raises(MNISTError, match=says):
        download.download_mnist(tmp_path / "mnist.npz")
    assert time.monotonic() - started < 10 and list(tmp_path.iterdir()) == []


def test_a_download_ended_by_sigterm_leaves_nothing(tmp_path, hostile):
    import signal

    env = {**os.environ, "MNIST_LAB_DOWNLOAD_URL": hostile.url + "/drip"}
    folder = tmp_path / "m"
    worker = subprocess.Popen([sys.executable, "-m", "mnist_core", "data", "download", "--quiet", "--to",
                               str(folder / "mnist.npz")], cwd=Path(__file__).resolve().parent.parent,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (folder.is_dir() and any(folder.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(folder.iterdir()), "the download should have started writing"
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 130 and err.count("\n") == 1, err
    assert list(folder.iterdir()) == []
