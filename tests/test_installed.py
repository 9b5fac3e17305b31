"""nin_lib installed with pip, used from a folder outside the repository: the command line runs and the recorded
runs load from the installed package's data."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install --no-deps .`` into a fresh target folder (this environment's torch and friends stay in use)."""
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return target


def outside(installed, tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(installed), "NIN_FAST": "1"}
    env.pop("NIN_RECORDS_DIR", None)
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_installed_command_line_lists_the_installed_records(installed, tmp_path):
    r = outside(installed, tmp_path, "-m", "nin_lib", "records", "list")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith(str(installed / "nin_lib" / "recorded") + ": ")
    assert any(line.startswith("  quick-cpu-seed-0 (run): quick preset, seed 0") for line in lines)


def test_records_load_from_the_installed_package(installed, tmp_path):
    code = ("from nin_lib import experiments, records; grid = experiments.recorded('experiments-cpu'); "
            "print(records.PACKAGED); print(grid['mode'], len(grid['configs']))")
    r = outside(installed, tmp_path, "-c", code)
    assert r.returncode == 0, r.stderr[-2000:]
    folder, grid = r.stdout.strip().splitlines()
    assert folder.startswith(str(installed)) and grid.split()[0] == "cpu" and int(grid.split()[1]) >= 9
