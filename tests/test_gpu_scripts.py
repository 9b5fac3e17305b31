"""The GPU commands (``benchmarks/gpu_run.sh speed | records``) as a CPU dry run: tiny 224-px subsets, one seed,
the same files with the same structure as on the GPU (lessons 05 and 06 read what they bring back)."""
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from nin_lib import data, experiments, records

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_run.sh"
WHEELS = REPO / "vendor" / "wheels"
HAVE_WHEEL = any(WHEELS.glob("d2l-1.0.3-*.whl"))
NO_WHEEL = ("the d2l 1.0.3 wheel is not in vendor/wheels (python -m pip download d2l==1.0.3 --no-deps -d "
            "vendor/wheels), so the dry run left the book's code out")
MAX_FILES = 8  # what the GPU tool brings back from $OUT


def _run(mode, out, work):
    env = {**os.environ, "DRY_RUN": "1", "OUT": str(out), "WORK": str(work), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "NIN_DATA_DIR": str(data.data_dir())}
    if not HAVE_WHEEL:
        env["BOOK_SEEDS"] = ""
    r = subprocess.run(["bash", str(SCRIPT), mode], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return r


@pytest.fixture(scope="module")
def dry(tmp_path_factory, fmnist):
    """Both commands' dry runs, each with its own $OUT (as on the GPU tool); the tars unpacked into ``back``."""
    root = tmp_path_factory.mktemp("gpu-dry")
    runs = {mode: _run(mode, root / f"out-{mode}", root / "work") for mode in ("speed", "records")}
    back = root / "back"
    for mode in runs:
        for tar in (root / f"out-{mode}").glob("*.tar"):
            with tarfile.open(tar) as t:
                t.extractall(back, filter="data")
    return {"root": root, "runs": runs, "back": back,
            "speed": json.loads((root / "out-speed" / "gpu_speed.json").read_text())}


def test_each_command_leaves_what_the_tool_brings_back(dry):
    files = {mode: sorted(p.name for p in (dry["root"] / f"out-{mode}").rglob("*") if p.is_file())
             for mode in ("speed", "records")}
    assert files["speed"] == ["gpu_speed.json", "log-speed.txt", "records-speed.tar"]
    assert files["records"] == ["log-records.txt", "records-lessons.tar"]
    assert all(len(f) <= MAX_FILES for f in files.values())
    log = (dry["root"] / "out-speed" / "log-speed.txt").read_text()
    assert log.startswith("plan for 'speed' on cpu within 600 s") and "=== summary ===" in log


def test_the_speed_json_holds_the_device_fits_numbers_and_the_profile(dry):
    s = dry["speed"]
    assert s["format"] == "nin-gpu-speed-1" and s["dry_run"] is True
    assert "gpu" in s and s["gpu"] is None  # a CPU has no GPU name; on the GPU it is e.g. 'NVIDIA H200'
    assert s["device"].startswith("cpu")
    (fit,) = s["fit"]["runs"]
    assert fit["record"] == "d2l-gpu-seed-0" and fit["seconds"] > 0 and len(fit["epoch_seconds"]) == 1
    assert 0 <= fit["test_acc"] <= 1 and s["fit"]["seconds"]["mean"] == fit["seconds"]
    assert fit["launch_to_exit_seconds"] >= fit["seconds"] - 0.05  # timed from outside too: start to exit
    top = s["profile"]["top_kernels"]
    assert top and top[0]["name"] and top[0]["self_ms"] > 0 and top[0]["percent"].endswith("%")
    assert [p["name"] for p in s["parts"]][:1] == ["fit d2l seed 0"] and all(p["exit"] == "0" for p in s["parts"])


@pytest.mark.skipif(not HAVE_WHEEL, reason=NO_WHEEL)
def test_the_books_code_ran_beside_fit_and_gives_the_ratio(dry):
    s = dry["speed"]
    (book,) = s["book"]["runs"]
    assert book["seconds"] > 0 and book["exit_seconds"] >= book["seconds"] and 0 <= book["test_acc"] <= 1
    assert book["epochs"] == 1 and book["images"] == 10 and book["d2l"] == "1.0.3"
    assert {"IPython", "matplotlib_inline"} <= set(s["book"]["stand_ins"])
    assert any(re.fullmatch(r"[\d.]+ examples/sec on cpu", line) for line in book["lines"])
    fit = s["fit"]["runs"][0]
    assert s["ratio"] == pytest.approx(book["seconds"] / fit["seconds"])
    assert s["ratio_launch_to_exit"] == pytest.approx(book["exit_seconds"] / fit["launch_to_exit_seconds"])


def test_the_records_and_weights_load(dry, monkeypatch):
    monkeypatch.setenv(records.RECORDS_ENV, str(dry["back"] / "records-speed"))
    record = records.load("d2l-gpu-seed-0")
    assert record["preset"]["name"] == "d2l" and record["weights"]["file"] == "d2l-gpu-seed-0.pt"
    net = records.load_weights("d2l-gpu-seed-0")
    assert net(torch.zeros(1, 1, 224, 224)).shape == (1, 10)
    assert "    weights d2l-gpu-seed-0.pt: ok" in (dry["root"] / "out-speed" / "log-speed.txt").read_text()
    monkeypatch.setenv(records.RECORDS_ENV, str(dry["back"] / "records-lessons"))
    assert records.load("improved-gpu-seed-0")["preset"]["name"] == "improved"
    assert records.load_weights("improved-gpu-seed-0")(torch.zeros(1, 1, 224, 224)).shape == (1, 10)
    grid = records.load("experiments-gpu", format=experiments.FORMAT)
    assert grid["complete"] and grid["mode"] == "full" and grid["settings_224"]["train_size"] == 4
    assert {e["key"] for e in grid["experiments"]} == {"head_224", "dropout_224", "num_1x1_224", "batch_norm_224"}
    assert all(len(c["runs"]) == 1 for c in grid["configs"].values())


def test_an_unknown_command_is_one_sentence():
    r = subprocess.run(["bash", str(SCRIPT), "all"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "'all'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
