"""Several processes asking for the same missing config produce exactly one training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKER = """
import json, sys
from mnist_core import training
from mnist_core.configs import RunConfig
from mnist_core.data import load_mnist
from mnist_core.store import StoreChain
from mnist_core.sweeps import ensure_runs

original = training.train
def counted(*args, **kwargs):
    print("TRAINED", flush=True)
    return original(*args, **kwargs)
training.train = counted
config = RunConfig(hidden=(10, 5), epochs=1, limit=2000, seed=9)
(run,) = ensure_runs([config], load_mnist(), StoreChain.default(sys.argv[1]), fused=False, progress=False)
print(json.dumps({"key": run.key, "created": run.metrics["created"], "acc": run.test_accuracy}))
"""


@pytest.mark.slow
def test_four_processes_train_one_config_once(tmp_path, mnist):
    env = {**os.environ, "MNIST_PATH": mnist.source}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(4)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    trained = sum(out.count("TRAINED") for out, _ in outputs)
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert trained == 1
    assert len({json.dumps(r, sort_keys=True) for r in results}) == 1
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 1
