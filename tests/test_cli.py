import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cli(*args, env=None):
    merged = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mnist_core", *args], cwd=REPO, env=merged,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args", [
    ["train", "--l2", "-1"],
    ["train", "--l2", "nan"],
    ["train", "--l2", "inf"],
    ["train", "--hidden", "0,5"],
    ["train", "--hidden", "2.5,5"],
    ["train", "--hidden", "99999"],
    ["train", "--hidden", "1,2,3,4,5"],
    ["train", "--epochs", "0"],
    ["train", "--epochs", "100000"],
    ["train", "--model", "rnn"],
    ["train", "--model", "cnn", "--hidden", "10"],
    ["train", "--precision", "mixed_bfloat16"],
    ["train", "--model", "improved_cnn", "--precision", "float16"],
    ["train", "--limit", "3"],
    ["sweep", "lambda", "--values", "0,abc"],
    ["sweep", "lambda", "--values", "0,-0.1"],
    ["sweep", "width", "--widths", "10:0"],
    ["sweep", "width", "--widths", "10-5"],
    ["sweep", "depth"],
    ["train", "--wait-timeout", "0"],
    ["frobnicate"],
    [],
])
def test_bad_arguments_exit_2_with_one_line(args, tmp_path):
    result = cli(*args, "--store", str(tmp_path)) if args and args[0] in ("train", "sweep") else cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_data_and_store_paths(tmp_path):
    missing = cli("train", "--epochs", "1", "--store", str(tmp_path), "--data", str(tmp_path / "no.npz"))
    assert missing.returncode == 2 and "MNIST_PATH" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = cli("train", "--epochs", "1", "--limit", "100", "--store", str(blocker / "sub"))
    assert store.returncode == 2 and "store" in store.stderr
    assert len(store.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_then_list_json(tmp_path, mnist):
    trained = cli("train", "--hidden", "10,5", "--epochs", "1", "--limit", "500", "--seed", "4",
                  "--store", str(tmp_path), "--quiet", "--data", mnist.source)
    assert trained.returncode == 0, trained.stderr
    assert "test accuracy" in trained.stdout
    listed = cli("list", "--json", "--store", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    entries = [e for e in json.loads(listed.stdout) if e["path"].startswith(str(tmp_path))]
    assert len(entries) == 1
    entry = entries[0]
    assert {"key", "name", "config", "train_accuracy", "test_accuracy", "path", "model_path"} <= set(entry)
    assert entry["config"]["hidden"] == [10, 5] and entry["config"]["seed"] == 4
    assert entry["name"] is None
    assert Path(entry["model_path"]).is_file()
    again = cli("train", "--hidden", "10,5", "--epochs", "1", "--limit", "500", "--seed", "4",
                "--store", str(tmp_path), "--quiet", "--data", mnist.source)
    assert again.returncode == 0 and entry["key"][:12] in again.stdout


@pytest.mark.parametrize("command", [["train"], ["sweep", "lambda"], ["list"], ["reproduce"]])
def test_an_empty_store_path_is_an_error_not_the_default_store(command):
    result = cli(*command, "--store", "")
    assert result.returncode == 2 and "store path is empty" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_fused_sweeps_train_fewer_images_than_one_compiled_call(tmp_path, mnist):
    # one compiled call takes 4 batches of 32 (128 images); --limit 10 to 126 once crashed here
    result = cli("sweep", "lambda", "--values", "0,-0", "--limit", "100", "--epochs", "1", "--quiet",
                 "--store", str(tmp_path), "--no-committed", env={"MNIST_PATH": mnist.source})
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 1  # -0 is 0: one run, not two


@pytest.mark.parametrize("command", [["train"], ["sweep", "lambda"], ["reproduce"]])
def test_no_committed_leaves_cached_results_out_for_every_training_command(tmp_path, command):
    from mnist_core.__main__ import build_parser, stores_for

    plain = stores_for(build_parser().parse_args([*command, "--store", str(tmp_path)]))
    alone = stores_for(build_parser().parse_args([*command, "--store", str(tmp_path), "--no-committed"]))
    assert [s.root for s in alone.all] == [plain.writable.root] and len(plain.all) == 2


@pytest.mark.parametrize("script", ["cluster_scaling.py", "drawing_robustness.py"])
def test_a_benchmark_without_mnist_fails_as_the_command_line_does(tmp_path, script):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / script)], cwd=tmp_path,
                            env={**os.environ, "MNIST_PATH": str(tmp_path / "absent.npz"),
                                 "TF_CPP_MIN_LOG_LEVEL": "3"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"benchmarks/{script}: error: MNIST not found at {tmp_path / 'absent.npz'}: set MNIST_PATH "
        "to a Keras-layout mnist.npz or a folder with the four IDX files"]


@pytest.mark.parametrize("store", ["/dev/null", "FILE/sub"])
def test_the_same_bad_store_gets_the_same_answer_from_every_command(tmp_path, store):
    (tmp_path / "FILE").write_text("a file")
    store = store.replace("FILE", str(tmp_path / "FILE"))
    image = tmp_path / "one.png"
    from PIL import Image

    Image.new("L", (28, 28)).save(image)
    answers = set()
    for command in (["list"], ["suspects"], ["report", "--no-figures"], ["classify", str(image)],
                    ["train", "--epochs", "1", "--limit", "100"]):
        result = cli(*command, "--store", store)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "pass a folder to --store" in lines[0], (command, result.stderr)
        answers.add(lines[0].split(": error: ", 1)[1])
    assert len(answers) == 1, answers


def test_saving_mnist_under_a_file_does_not_ask_for_free_space(tmp_path):
    (tmp_path / "file").write_text("x")
    from mnist_core.data import MNISTError
    from mnist_core.download import download_mnist

    with pytest.raises(MNISTError) as raised:
        download_mnist(tmp_path / "file" / "mnist.npz")
    assert "free some space" not in str(raised.value) and "choose a folder you can write" in str(raised.value)
