import ctypes
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from mnist_core.configs import RunConfig
from mnist_core.store import MANIFEST, RUN_FILES, RunRejected, RunStore, StoreChain, StoreError
from tests.forge import write_small_run

FINGERPRINT = "f" * 64
CONFIG = RunConfig(hidden=(10, 5), epochs=1, limit=100)
KEY = CONFIG.key(FINGERPRINT)
REPO = Path(__file__).resolve().parent.parent


def publish(store):
    return store.publish(KEY, CONFIG, FINGERPRINT, write_small_run)


def test_publish_then_get(store):
    run = publish(store)
    assert run.key == KEY and run.config == CONFIG and run.test_accuracy == 0.999
    assert store.get(KEY) == run
    assert sorted(p.name for p in run.path.iterdir()) == sorted((*RUN_FILES, MANIFEST))
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".tmp")] == []
    assert store.keys() == [KEY]


def test_missing_entry_is_none(store):
    assert store.get(KEY) is None


@pytest.mark.parametrize("damage", ["truncate", "delete", "edit", "manifest", "config", "extra"])
def test_damaged_entry_is_reported_once_and_treated_as_missing(store, damage, caplog):
    run = publish(store)
    target = run.path / "predictions.npz"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:5])
    elif damage == "delete":
        target.unlink()
    elif damage == "edit":
        data = bytearray(target.read_bytes())
        data[3] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "manifest":
        (run.path / MANIFEST).write_text("{not json")
    elif damage == "config":
        text = (run.path / "config.json").read_text().replace('"seed": 0', '"seed": 1')
        (run.path / "config.json").write_text(text)
        manifest = json.loads((run.path / MANIFEST).read_text())
        from mnist_core.store import sha256_file
        manifest["files"]["config.json"] = {"size": (run.path / "config.json").stat().st_size,
                                            "sha256": sha256_file(run.path / "config.json")}
        (run.path / MANIFEST).write_text(json.dumps(manifest))
    elif damage == "extra":
        manifest = json.loads((run.path / MANIFEST).read_text())
        del manifest["files"]["errors.npz"]
        (run.path / MANIFEST).write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="mnist_core.store"):
        assert store.get(KEY) is None
        assert store.get(KEY) is None
        assert list(store.runs()) == []
    warnings = [r for r in caplog.records if KEY in r.getMessage()]
    assert len(warnings) == 1 and "ignoring run" in warnings[0].getMessage()


def test_a_run_that_fails_verification_is_never_stored(store):
    config = RunConfig(epochs=2)
    key = config.key("f" * 64)

    def write_with_one_epoch_missing(folder):
        write_small_run(folder, epochs=2)
        (folder / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy\n1,0.5,0.9,0.6,0.85\n")

    with pytest.raises(RunRejected, match="failed verification and was not stored: .*history"):
        store.publish(key, config, "f" * 64, write_with_one_epoch_missing)
    assert store.get(key) is None and not [p for p in store.root.iterdir() if p.name.startswith(".tmp")]


def test_bad_entry_is_replaced_on_publish(store):
    run = publish(store)
    (run.path / "model.keras").write_bytes(b"corrupt")
    assert store.get(KEY) is None
    assert publish(store).test_accuracy == 0.999
    assert store.get(KEY) is not None


def test_failed_write_leaves_nothing(store):
    def crash(folder):
        write_small_run(folder)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        store.publish(KEY, CONFIG, FINGERPRINT, crash)
    assert store.get(KEY) is None
    assert [p.name for p in store.root.iterdir() if not p.name.startswith(".locks")] == []


def test_incomplete_write_is_refused(store):
    with pytest.raises(StoreError, match="missing"):
        store.publish(KEY, CONFIG, FINGERPRINT, lambda folder: None)
    assert store.get(KEY) is None


def test_read_only_store_refuses_to_write(tmp_path):
    with pytest.raises(StoreError, match="read-only"):
        publish(RunStore(tmp_path, read_only=True))


def test_store_under_a_file_gives_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create store folder"):
        publish(RunStore(blocker / "store"))


@pytest.mark.parametrize("key", ["../../etc", "A" * 64, "0" * 63, "", "0" * 64 + "/x"])
def test_keys_must_be_hex(store, key):
    with pytest.raises(StoreError, match="64 lowercase hex"):
        store.get(key)


def test_stores_look_up_in_order_and_deduplicate(tmp_path):
    first, second = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    publish(second)
    stores = StoreChain(first, [second])
    assert stores.get(KEY).path.parent == second.root
    publish(first)
    assert stores.get(KEY).path.parent == first.root
    assert len(stores.runs()) == 1


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640),
                                                           (0o077, 0o700, 0o600)])
def test_published_runs_get_the_modes_the_umask_allows(store, umask, folder_mode, file_mode):
    old = os.umask(umask)
    try:
        run = publish(store)
    finally:
        os.umask(old)
    assert stat.S_IMODE(run.path.stat().st_mode) == folder_mode
    assert {stat.S_IMODE(p.stat().st_mode) for p in run.path.iterdir()} == {file_mode}


AS_ANOTHER_USER = """
import sys
from mnist_core.configs import RunConfig
from mnist_core.store import RunStore, StoreError
from tests.forge import write_small_run
store, key = RunStore(sys.argv[1]), sys.argv[2]
print("get:", store.get(key))
try:
    store.publish(key, RunConfig(hidden=(10, 5), epochs=1, limit=100), "f" * 64, write_small_run)
except StoreError as exc:
    print("publish:", exc)
"""


def without_dac_override():
    """In a child before exec: drop the capabilities that let root read any file (prctl
    PR_CAPBSET_DROP of CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), so it is one user among others."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as two users")
def test_a_run_another_user_cannot_read_is_reported_and_left_in_place(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # everyone may write the store, but this run is its owner's alone
    old = os.umask(0o077)
    try:
        run = publish(RunStore(shared))
    finally:
        os.umask(old)
    for path in (run.path, *run.path.iterdir()):
        os.chown(path, 65534, 65534)  # the first user: nobody
    result = subprocess.run([sys.executable, "-c", AS_ANOTHER_USER, str(shared), KEY], cwd=REPO,
                            preexec_fn=without_dac_override, capture_output=True, text=True, timeout=120)
    assert "get: None" in result.stdout, result.stderr
    assert "cannot be read (Permission denied" in result.stderr  # reported...
    assert "left as it is" in result.stdout  # ...and publishing over it is refused
    assert run.path.is_dir() and RunStore(shared).get(KEY) == run  # still there, whole
    assert [p.name for p in shared.iterdir() if p.name.startswith((".trash", ".tmp"))] == []


def test_stale_leftovers_are_cleaned_on_publish_fresh_and_locked_ones_kept(store):
    store.root.mkdir(parents=True)
    day_old = time.time() - 25 * 3600
    stale = [store.root / ".tmp-aaaaaaaaaaaa-1", store.root / ".trash-bbbbbbbbbbbb-2"]
    fresh = store.root / ".tmp-cccccccccccc-3"
    locked = store.root / f".tmp-{'d' * 12}-4"
    for folder in (*stale, fresh, locked):
        folder.mkdir()
        (folder / "metrics.json").write_text("{}")
    for folder in (*stale, locked):
        os.utime(folder, (day_old, day_old))
    with store.lock("d" * 64):
        publish(store)
    assert [p.exists() for p in (*stale, fresh, locked)] == [False, False, True, True]
    os.utime(fresh, (day_old, day_old))
    assert store.clean_leftovers() == 2  # the fresh one, now old, and the one no longer locked


def test_list_reports_how_many_leftovers_it_cleaned(tmp_path):
    store = tmp_path / "store"
    old_leftover = store / ".tmp-aaaaaaaaaaaa-1"
    old_leftover.mkdir(parents=True)
    os.utime(old_leftover, (time.time() - 2 * 86400,) * 2)
    result = subprocess.run([sys.executable, "-m", "mnist_core", "list", "--store", str(store)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "removed 1 leftover folder" in result.stdout
    assert not old_leftover.exists()


def test_a_symlinked_key_folder_is_discarded_without_touching_its_target(store, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not ours")
    store.root.mkdir(parents=True)
    (store.root / KEY).symlink_to(elsewhere)
    assert store.get(KEY) is None
    run = publish(store)
    assert run.path.is_dir() and not run.path.is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "not ours"
    assert [p.name for p in store.root.iterdir() if p.name.startswith((".trash", ".tmp"))] == []


HOLD_LOCK = """
import sys, time
from mnist_core.store import RunStore
with RunStore(sys.argv[1]).lock(sys.argv[2]):
    print("HOLDING", flush=True)
    time.sleep(600)
"""


@contextmanager
def stopped_lock_holder(store, key):
    """A process holding `key`'s lock, stopped with SIGSTOP (not killed: the lock stays held)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(store.root), key], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        holder.send_signal(signal.SIGSTOP)
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_waiting_for_a_stopped_lock_holder_says_who_and_gives_up(store):
    said = []
    with stopped_lock_holder(store, KEY) as holder:
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"gave up .* process {holder.pid} holds it but is stopped"):
            with store.lock(KEY, "a test run", wait_timeout=3, on_wait=said.append):
                pass
        assert 3 <= time.monotonic() - started < 10
    assert said and f"waiting for run {KEY[:12]} (a test run)" in said[0]
    assert f"kill -CONT {holder.pid}" in said[0]


def test_train_waiting_for_a_stopped_lock_holder_exits_2_with_one_line(store, mnist):
    args = ["--hidden", "10,5", "--epochs", "1", "--limit", "100", "--store", str(store.root), "--quiet",
            "--wait-timeout", "2", "--no-committed"]
    with stopped_lock_holder(store, CONFIG.key(mnist.fingerprint)):
        result = subprocess.run([sys.executable, "-m", "mnist_core", "train", *args], cwd=REPO,
                                timeout=120, capture_output=True, text=True,
                                env={**os.environ, "MNIST_PATH": mnist.source})
    lines = [line for line in result.stderr.splitlines() if "mnist_core" in line or "waiting" in line]
    assert result.returncode == 2, result.stderr
    assert lines[0].startswith("waiting for run") and "is stopped" in lines[0]
    assert lines[-1].startswith("python -m mnist_core train: error: gave up after 2 s")
    assert "Traceback" not in result.stderr
