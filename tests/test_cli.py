"""The command line: the seed's table, a training run with its record, and what a bad value and a bug each end with.

Most cases call ``cli.main`` in this process; two run ``python -m nin_lib`` for real (the entry point and the exit
status a shell sees).
"""
import json
import subprocess
import sys

import pytest

from conftest import run_cli as run
from nin_lib import cli, models, records, shapes


def real(*args):
    return subprocess.run([sys.executable, "-m", "nin_lib", *args], capture_output=True, text=True, timeout=120)


def test_trace_prints_the_seed_table():
    r = real("trace")
    assert r.returncode == 0 and r.stdout.splitlines() == shapes.seed_lines(models.nin(), 224)
    assert "Sequential output shape" in r.stdout


def test_trace_table():
    r = run("trace", "--table", "--model", "nin28")
    assert r.returncode == 0 and "1,255,718" in r.stdout and "1×10×4×4" in r.stdout


def test_train_writes_history_curves_checkpoint_and_a_record_that_lists(tmp_path, fmnist):
    out, folder = tmp_path / "out", tmp_path / "records"
    r = run("train", "--preset", "quick", "--epochs", "1", "--subset", "128", "--test-subset", "64", "--batch-size",
            "64", "--device", "cpu", "--threads", "1", "--no-progress", "--out", out, "--checkpoint", tmp_path / "c.pt",
            "--record", "tiny", "--record-dir", folder, "--weights", "tiny")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("training preset 'quick' on cpu")
    assert [line for line in lines if line.startswith("epoch ")][0].startswith("epoch 1/1: loss ")
    assert lines[-1] == "recorded tiny.json and tiny.pt"
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) == 1 and history["meta"]["preset"]["name"] == "quick"
    assert (out / "curves.png").stat().st_size > 1000 and (tmp_path / "c.pt").exists()
    record = records.load("tiny", folder=folder)
    assert record["command"].startswith("python -m nin_lib train --preset quick --epochs 1")
    assert record["weights"]["file"] == "tiny.pt" and len(record["history"]["epochs"]) == 1
    listed = run("records", "list", "--dir", folder)
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == [f"{folder}: 1 record(s)", f"  tiny (run): {records.about(record)}",
                                          "    weights tiny.pt: ok"]


@pytest.mark.parametrize("args, says", [
    (("trace", "--input-size", "66"), ("66", "too small")),
    (("trace", "--input-size", "abc"), ("'abc'",)),
    (("trace", "--input-size", "0"), ("size 0",)),
    (("trace", "--model", "vgg"), ("'vgg'",)),
    (("fly",), ("'fly'",)),
    ((), ("required",)),
    (("train", "--preset", "fast"), ("preset 'fast'",)),
    (("train", "--lr", "0"), ("learning rate 0.0",)),
    (("train", "--lr", "nan"), ("learning rate nan",)),
    (("train", "--batch-size", "0"), ("batch_size 0",)),
    (("train", "--batch-size", "1.5"), ("'1.5'",)),
    (("train", "--epochs", "-2"), ("num_epochs -2",)),
    (("train", "--device", "tpu"), ("'tpu'",)),
    (("train", "--preset", "d2l", "--resize", "64"), ("image size 64",)),
    (("train", "--resume"), ("--resume", "--checkpoint")),
    (("train", "--weights", "w"), ("--weights", "--record")),
    (("records",), ("required", "action")),
])
def test_a_bad_value_is_one_sentence_and_exit_2(args, says):
    r = run(*args)
    assert r.returncode == 2 and r.stdout == ""
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: ") and line.endswith(".")
    assert all(word in line for word in says), line


def test_a_bad_value_in_a_real_process_is_exit_2_and_one_line():
    r = real("trace", "--input-size", "66")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_a_bug_is_not_shown_as_a_bad_value(monkeypatch):
    """Only a ``checks.Refusal`` becomes one sentence: any other error, even a ValueError, goes up as itself."""
    def broken(**options):
        raise ValueError("a bug in nin")
    monkeypatch.setattr(models, "nin", broken)
    with pytest.raises(ValueError, match="a bug in nin"):
        cli.main(["trace"])
