"""Files of the wrong kind, planted links, values out of range, another user's files: every
reader refuses them without blocking, every writer leaves what it did not create alone."""

import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_core.catalog import lambda_configs
from mnist_core.configs import RunConfig
from mnist_core.safe_read import UnsafeFile, read_json
from mnist_core.safe_write import NotReplaced, replacing, write_atomic
from mnist_core.store import MANIFEST, RUN_FILES, RunStore, StoreChain
from mnist_core.suspects import Verdicts
from tests import forge

REPO = Path(__file__).resolve().parent.parent
FINGERPRINT = "f" * 64
SMALL = RunConfig(hidden=(10, 5), epochs=1, limit=500, seed=7)


def cli(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "mnist_core", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def one_line_error(result, says: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert says in result.stderr, result.stderr


def forged(store: RunStore, fingerprint: str = FINGERPRINT, config: RunConfig = SMALL) -> Path:
    return store.publish(config.key(fingerprint), config, fingerprint, forge.write_small_run).path


def set_size_in_manifest(folder: Path, name: str, size: int) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][name]["size"] = size
    (folder / MANIFEST).write_text(json.dumps(manifest))


def fifo_manifest(folder):
    (folder / MANIFEST).unlink()
    os.mkfifo(folder / MANIFEST)


def fifo_model(folder):
    (folder / "model.keras").unlink()
    os.mkfifo(folder / "model.keras")
    set_size_in_manifest(folder, "model.keras", 0)


def zero_device_predictions(folder):
    (folder / "predictions.npz").unlink()
    os.symlink("/dev/zero", folder / "predictions.npz")
    set_size_in_manifest(folder, "predictions.npz", 0)


def socket_history(folder):
    (folder / "history.csv").unlink()
    listener, here = socket.socket(socket.AF_UNIX), os.getcwd()
    os.chdir(folder)  # a socket's path is limited to 107 bytes: bind a relative one
    try:
        listener.bind("history.csv")
    finally:
        os.chdir(here)
        listener.close()
    set_size_in_manifest(folder, "history.csv", 0)


NOT_REGULAR = {"FIFO manifest": (fifo_manifest, "is a FIFO"), "FIFO model": (fifo_model, "is a FIFO"),
               "link to /dev/zero": (zero_device_predictions, "is a symbolic link"),
               "socket": (socket_history, "is a socket")}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", list(NOT_REGULAR))
def test_a_run_file_that_is_not_a_regular_file_is_refused_without_blocking(store, kind, caplog):
    folder = forged(store)
    damage, says = NOT_REGULAR[kind]
    damage(folder)
    with caplog.at_level(logging.WARNING, logger="mnist_core.store"):
        assert store.get(folder.name) is None and list(store.runs()) == []
    assert any(says in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("label", [-(2 ** 63), -1, 10])
def test_labels_out_of_range_on_either_side_are_refused(store, label):
    folder = forged(store)
    with np.load(folder / "errors.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["true"] = np.full(len(arrays["true"]), label, np.int64)
    np.savez(folder / "errors.npz", **arrays)
    forge.reseal(folder)
    with pytest.raises(UnsafeFile, match="true must hold digits 0-9"):
        store.load(folder.name)


@pytest.mark.slow
def test_list_and_train_with_a_fifo_a_device_link_and_a_plain_file_in_the_store(tmp_path, mnist):
    """The CLI, as a person runs it: nothing blocks, each entry is reported, train retrains."""
    store = RunStore(tmp_path / "store")
    first, second, third = lambda_configs([0.0], [7, 8, 9], epochs=1, limit=500)
    fifo = forged(store, mnist.fingerprint, first)
    fifo_manifest(fifo)
    device = forged(store, mnist.fingerprint, second)
    zero_device_predictions(device)
    plain = store.root / third.key(mnist.fingerprint)
    plain.write_text("x\n")
    listing = cli("list", "--store", str(store.root), timeout=60)
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    for key, says in ((fifo.name, "is a FIFO"), (device.name, "is a symbolic link"),
                      (plain.name, "is a file, not a run folder")):
        reports = [line for line in listing.stderr.splitlines() if key in line]
        assert len(reports) == 1 and says in reports[0], listing.stderr
    env = {"MNIST_PATH": mnist.source}
    trained = cli("sweep", "lambda", "--values", "0", "--seeds", "7,8,9", "--epochs", "1", "--limit",
                  "500", "--store", str(store.root), "--quiet", "--no-committed", timeout=300, env=env)
    assert trained.returncode == 0, trained.stderr
    for key in (fifo.name, device.name, plain.name):
        assert store.get(key) is not None and (store.root / key).is_dir()


@pytest.mark.parametrize("kind", ["loop", "folder", "link to a victim"])
def test_a_lock_file_that_is_not_a_file_is_one_line_and_nothing_is_written_through(tmp_path, kind):
    store = tmp_path / "store"
    locks = store / ".locks"
    locks.mkdir(parents=True)
    key = SMALL.key(FINGERPRINT)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    if kind == "loop":
        os.symlink(f"{key}.lock", locks / f"{key}.lock")
    elif kind == "folder":
        (locks / f"{key}.lock").mkdir()
    else:
        os.symlink(victim, locks / f"{key}.lock")
    from mnist_core.store import StoreError

    with pytest.raises(StoreError, match="not a regular file; remove it"):
        with RunStore(store).lock(key):
            pass
    assert victim.read_text() == "precious\n"


def test_train_with_a_lock_file_loop_exits_2_with_one_line(tmp_path, mnist):
    store = tmp_path / "store"
    key = SMALL.key(mnist.fingerprint)
    (store / ".locks").mkdir(parents=True)
    os.symlink(f"{key}.lock", store / ".locks" / f"{key}.lock")
    result = cli("train", "--hidden", "10,5", "--epochs", "1", "--limit", "500", "--seed", "7", "--store",
                 str(store), "--quiet", "--no-committed", env={"MNIST_PATH": mnist.source})
    one_line_error(result, "is a symbolic link, not a regular file")


def test_a_planted_owner_link_is_replaced_not_written_through(tmp_path):
    store = RunStore(tmp_path / "store")
    key = SMALL.key(FINGERPRINT)
    (store.root / ".locks").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.symlink(victim, store.root / ".locks" / f"{key}.owner")
    with store.lock(key):
        assert json.loads((store.root / ".locks" / f"{key}.owner").read_text())["pid"] == os.getpid()
    assert victim.read_text() == "precious\n" and not (store.root / ".locks" / f"{key}.owner").exists()


def test_verdict_keys_are_ascii_digits_in_range_others_skipped_with_one_line(tmp_path, caplog):
    (tmp_path / "suspect_verdicts.json").write_text(json.dumps(
        {"²": "unsure", "٣": "label wrong", "1" * 5000: "unsure", "10000": "unsure", "-1": "unsure",
         "12": "label fine", "0": "unsure"}))
    with caplog.at_level(logging.WARNING, logger="mnist_core.suspects"):
        assert Verdicts(tmp_path).load() == {12: "label fine", 0: "unsure"}
    assert len(caplog.records) == 1 and "skipped 5 entries" in caplog.records[0].getMessage()


def test_a_planted_temporary_link_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in (f".suspect_verdicts.json.{os.getpid()}.tmp", "suspect_verdicts.json.lock.tmp"):
        os.symlink(victim, tmp_path / name)
    Verdicts(tmp_path).set(100, "unsure")
    assert victim.read_text() == "precious\n"
    assert Verdicts(tmp_path).load() == {100: "unsure"}


AS_ANOTHER_USER = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                   "--bounding-set=-dac_override,-dac_read_search"]


def test_another_users_unreadable_verdicts_are_refused_not_replaced(tmp_path):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as a user who cannot read another's file")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    theirs = shared / "suspect_verdicts.json"
    theirs.write_text('{"5": "label wrong"}')
    os.chown(theirs, 4242, 4242)
    theirs.chmod(0o600)
    script = ("import sys; from mnist_core.suspects import Verdicts, VerdictsUnreadable\n"
              "try:\n    Verdicts(sys.argv[1]).set(100, 'unsure')\n"
              "except VerdictsUnreadable as exc:\n    print('REFUSED', exc)\n")
    result = subprocess.run([*AS_ANOTHER_USER, sys.executable, "-c", script, str(shared)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("REFUSED") and "cannot be read" in result.stdout, result
    assert theirs.read_text() == '{"5": "label wrong"}' and theirs.stat().st_uid == 4242
    assert sorted(p.name for p in shared.iterdir()) == ["suspect_verdicts.json",
                                                        "suspect_verdicts.json.lock"]


def test_the_writer_refuses_to_replace_a_file_it_cannot_read(tmp_path, monkeypatch):
    target = tmp_path / "theirs.json"
    target.write_text("{}")
    real_open = os.open

    def denied(path, flags, *args):
        if Path(path) == target and not flags & os.O_WRONLY:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(NotReplaced, match="cannot be read here"):
        write_atomic(target, "{}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.json"]


def test_an_interrupted_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with replacing(tmp_path / "out.npz") as out:
            out.write(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


SLOW_SUBSET = """
import sys, time
import numpy as np
from pathlib import Path
from mnist_core.reading import neighbours
from mnist_core.__main__ import main

real = np.savez_compressed
def slow(out, **arrays):
    real(out, **arrays)
    print("WRITING", flush=True)
    time.sleep(60)
neighbours.np.savez_compressed = slow
neighbours.write_subset.__defaults__ = (Path(sys.argv[1]),)
sys.exit(main(["data", "neighbours"]))
"""


def test_an_interrupted_neighbours_subset_leaves_nothing_and_says_so(tmp_path, mnist):
    folder = tmp_path / "neighbours"
    worker = subprocess.Popen([sys.executable, "-c", SLOW_SUBSET, str(folder / "subset.npz")], cwd=REPO,
                              env={**os.environ, "MNIST_PATH": mnist.source}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "WRITING"
    assert len(list(folder.iterdir())) == 1  # the temporary file, beside its target
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 130 and err.strip() == "interrupted: nothing was left half-written", err
    assert list(folder.iterdir()) == []


# Hostile stores: entries of every file type, links and contents, where runs, locks and verdicts go.
KINDS = ["fifo", "dir", "link to /dev/zero", "dangling link", "link loop", "garbage", "empty", "huge sparse",
         "json bomb", "link to a victim"]


def plant(path: Path, kind: str, victim: Path, content: bytes) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()  # a file, a FIFO, a link
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "link to /dev/zero":
        os.symlink("/dev/zero", path)
    elif kind == "dangling link":
        os.symlink(path.parent / "nowhere", path)
    elif kind == "link loop":
        os.symlink(path.name, path)
    elif kind == "link to a victim":
        os.symlink(victim, path)
    elif kind == "huge sparse":
        with open(path, "wb") as handle:
            handle.truncate(20 << 30)
    elif kind == "json bomb":
        path.write_bytes(b"[" * 50000)
    else:
        path.write_bytes(b"" if kind == "empty" else content)


def snapshot(root: Path) -> dict:
    seen = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        regular = stat.S_ISREG(info.st_mode) and info.st_size < (1 << 20)
        seen[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns,
                           path.read_bytes() if regular else None)
    return seen


class Hung(Exception):
    pass


def _alarm(signum, frame):
    raise Hung("a reader blocked for more than 10 s")


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root


PLACES = st.sampled_from(["manifest.json", "model.keras", "predictions.npz", "errors.npz", "history.csv",
                          "config.json", "metrics.json", "KEY", "LOCK", "OWNER", "VERDICTS"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(PLACES, st.sampled_from(KINDS), st.binary(max_size=64)), min_size=1,
                        max_size=4))
def test_readers_of_a_hostile_store_neither_hang_nor_raise_nor_change_files(tmp_path_factory, changes):
    from mnist_core.__main__ import list_entries
    from mnist_core.jobs import list_jobs

    root = tmp_path_factory.mktemp("hostile")
    store = RunStore(root / "store")
    folder = forged(store)
    victim = root / "victim.txt"
    victim.write_text("precious\n")
    (store.root / ".locks").mkdir()
    (store.root / "suspect_verdicts.json").write_text('{"3": "unsure"}')
    key = folder.name
    for place, kind, content in changes:
        target = {"KEY": folder, "LOCK": store.root / ".locks" / f"{key}.lock",
                  "OWNER": store.root / ".locks" / f"{key}.owner",
                  "VERDICTS": store.root / "suspect_verdicts.json"}.get(place, folder / place)
        if place in RUN_FILES or place == MANIFEST:
            if not folder.is_dir() or folder.is_symlink():
                continue
        plant(target, kind, victim, content)
    before = snapshot(root)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        chain = StoreChain(store)
        entries = list_entries(chain)
        assert all(entry["key"] == key for entry in entries)
        Verdicts(store.root).load()
        list_jobs(chain)
        store.clean_leftovers(older_than_s=0)
        from mnist_core.store import holder_description

        holder_description(store.root / ".locks" / f"{key}.owner")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert snapshot(root) == before
    assert victim.read_text() == "precious\n"


def test_read_json_of_a_fifo_returns_at_once(tmp_path):
    os.mkfifo(tmp_path / "x.json")
    started = time.monotonic()
    with pytest.raises(UnsafeFile, match="is a FIFO"):
        read_json(tmp_path / "x.json")
    assert time.monotonic() - started < 5
