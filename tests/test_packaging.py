"""The project installs as a package: one list of dependencies, and a `mnist-lab` command that
works from any folder and finds the committed results."""

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mnist_core.store import COMMITTED_STORE, RunStore, StoreChain

REPO = Path(__file__).resolve().parent.parent


def test_pyproject_holds_the_one_list_of_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "tensorflow>=2.21" in project["dependencies"]
    assert "pytest>=9.0" in project["optional-dependencies"]["test"]
    lines = {name: [line for line in (REPO / name).read_text().splitlines()
                    if line and not line.startswith("#")]
             for name in ("requirements.txt", "requirements-test.txt")}
    assert lines == {"requirements.txt": ["-e ."], "requirements-test.txt": ["-e .[test]"]}
    assert project["scripts"]["mnist-lab"] == "mnist_core.__main__:main"


@pytest.mark.slow
def test_mnist_lab_installed_in_a_fresh_environment_lists_the_committed_runs_from_any_folder(tmp_path):
    venv = tmp_path / "venv"
    # The libraries come from this environment (no download), a venv or not: a .pth file puts its
    # site-packages after the new environment's own. (--system-site-packages would give the base
    # interpreter's, which inside a venv holds none of them.) The project itself is built and
    # installed into the new environment, as `pip install .` does.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    Path(own, "outer-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    for folder in ("mnist_core", "cached_results"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                            str(source)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert build.returncode == 0, build.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MNIST_LAB_STORE")}
    env["MNIST_LAB_STORE"] = str(tmp_path / "store")
    asked = ("import mnist_core.store as s, mnist_core.reading.reading as r; "
             "print(s.__file__, r.__file__, s.COMMITTED_STORE)")
    where = subprocess.run([python, "-c", asked], capture_output=True, text=True, cwd=elsewhere, env=env,
                           check=True).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # the installed copy, not this checkout
    listed = subprocess.run([venv / "bin" / "mnist-lab", "list", "--json"], capture_output=True, text=True,
                            cwd=elsewhere, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    keys = {run["key"] for run in json.loads(listed.stdout)}
    assert keys == {run.key for run in StoreChain(RunStore(COMMITTED_STORE, read_only=True)).runs()}
