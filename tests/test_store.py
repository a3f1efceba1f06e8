import json
import logging

import pytest

from mnist_core.configs import RunConfig
from mnist_core.store import MANIFEST, RUN_FILES, RunStore, StoreError, Stores

FINGERPRINT = "f" * 64
CONFIG = RunConfig(hidden=(10, 5), epochs=1, limit=100)
KEY = CONFIG.key(FINGERPRINT)


def fake_run(folder):
    for name in RUN_FILES:
        if name != "config.json":
            (folder / name).write_bytes(f"{name} contents".encode() * 10)
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "train_accuracy": 0.6}))


def publish(store):
    return store.publish(KEY, CONFIG, FINGERPRINT, fake_run)


def test_publish_then_get(store):
    run = publish(store)
    assert run.key == KEY and run.config == CONFIG and run.test_accuracy == 0.5
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
    assert len(warnings) == 1 and "invalid run" in warnings[0].getMessage()


def test_bad_entry_is_replaced_on_publish(store):
    run = publish(store)
    (run.path / "model.keras").write_bytes(b"corrupt")
    assert store.get(KEY) is None
    assert publish(store).test_accuracy == 0.5
    assert store.get(KEY) is not None


def test_failed_write_leaves_nothing(store):
    def crash(folder):
        fake_run(folder)
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
    stores = Stores(first, [second])
    assert stores.get(KEY).path.parent == second.root
    publish(first)
    assert stores.get(KEY).path.parent == first.root
    assert len(stores.runs()) == 1
