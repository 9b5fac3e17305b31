"""Lesson 06's experiments: the grid script (tiny config), its results file, the live run, the plot."""
import json
import math
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import torch

from nin_lib import experiments, presets, viz

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "experiments.py"
COMMITTED = ROOT / "benchmarks" / "experiments_cpu.json"


def run_script(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def check_results(results, mode, min_seeds=3, whole_experiments=True):
    """The structure every results file must have, and numbers that make sense."""
    assert results["format"] == experiments.FORMAT and results["mode"] == mode
    assert results["complete"] is True
    assert results["command"].startswith("python benchmarks/experiments.py")
    datetime.fromisoformat(results["created"])
    datetime.fromisoformat(results["finished"])
    for key in ("platform", "python", "torch", "cpu", "cpu_count", "torch_threads"):
        assert key in results["machine"]
    assert len(results["seeds"]) >= min_seeds and len(set(results["seeds"])) == len(results["seeds"])
    assert results["experiments"] or not whole_experiments, "no experiment has all its configurations"
    for e in results["experiments"]:
        assert e["question"] and e["book"] and all(c in results["configs"] for c in e["configs"])
    for name, c in results["configs"].items():
        assert [r["seed"] for r in c["runs"]] == results["seeds"], name
        assert c["parameters"] > 0 and c["macs_per_image"] > 0
        for r in c["runs"]:
            assert 0 <= r["test_acc"] <= 1 and 0 <= r["train_acc"] <= 1
            assert math.isclose(r["gap"], r["train_acc"] - r["test_acc"])
            assert r["seconds"] > 0 and r["stalled"] == (r["test_acc"] < experiments.STALLED_BELOW)
        s = c["summary"]["test_acc"]
        accs = [r["test_acc"] for r in c["runs"]]
        assert s["n"] == len(accs) and s["min"] <= s["mean"] <= s["max"]
        assert math.isclose(s["mean"], sum(accs) / len(accs))
        assert math.isclose(s["std"], torch.tensor(accs, dtype=torch.float64).std().item(), abs_tol=1e-12)
    return results


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "tiny.json"
    r = run_script("--tiny", "--out", str(out), "--threads", "1")
    assert r.returncode == 0, r.stderr
    return experiments.load_results(out)


def test_tiny_grid_writes_a_complete_results_file(tiny):
    check_results(tiny, "tiny")
    assert set(tiny["configs"]) == set(experiments.CONFIGS)
    assert {e["key"] for e in tiny["experiments"]} == {e["key"] for e in experiments.EXPERIMENTS}


def test_tiny_grid_parameters_differ_as_the_nets_do(tiny):
    p = {name: c["parameters"] for name, c in tiny["configs"].items()}
    assert p["fc-head"] > p["base"] and p["late-head"] > p["base"]
    assert p["base"] > p["one-1x1"] > p["no-1x1"]
    assert p["no-dropout"] == p["base"] and p["no-bn"] < p["base"]  # dropout has no weights; BN has some


def test_summarize_mean_and_sample_std():
    s = experiments.summarize([0.5, 0.7, 0.9])
    assert math.isclose(s["mean"], 0.7) and math.isclose(s["std"], 0.2)
    assert (s["min"], s["max"], s["n"]) == (0.5, 0.9, 3)
    assert experiments.summarize([0.4])["std"] == 0.0
    assert experiments.summarize([])["n"] == 0


def test_experiment_rows_and_per_seed(tiny):
    rows = experiments.experiment_rows(tiny, "num_1x1")
    assert [r["config"] for r in rows] == ["base", "one-1x1", "no-1x1"]
    assert all(r["runs"] == 3 and r["test_acc_min"] <= r["test_acc_mean"] <= r["test_acc_max"] for r in rows)
    assert experiments.per_seed(tiny, "base") == [r["test_acc"] for r in tiny["configs"]["base"]["runs"]]
    with pytest.raises(ValueError, match="experiment 'nope' is not in these results"):
        experiments.experiment_rows(tiny, "nope")
    with pytest.raises(ValueError, match="metric 'speed' is not known"):
        experiments.per_seed(tiny, "base", "speed")


def test_load_results_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        experiments.load_results(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        experiments.load_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not written by nin_lib.experiments"):
        experiments.load_results(tmp_path / "other.json")


@pytest.mark.parametrize("args, says", [
    (("--only", "resnet"), "configuration 'resnet' is not known"),
    (("--seeds", "-1"), "--seeds [-1] is not allowed"),
    (("--seeds", "1", "1"), "is not allowed; give distinct whole numbers"),
    (("--threads", "0"), "--threads 0 is not allowed"),
    (("--epochs", "x"), "invalid int value: 'x'"),
    (("--tiny", "--full"), "not allowed with argument"),
    (("--train-size", "0"), "train_size 0 is not allowed"),
])
def test_bad_arguments_exit_2_with_one_sentence(args, says):
    r = run_script(*args, timeout=120)
    assert r.returncode == 2
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_missing_gpu_is_an_error_not_a_fallback():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run_script("--tiny", "--device", "cuda", timeout=120)
    assert r.returncode == 2 and "has no CUDA GPU" in r.stderr


def test_nets_of_each_head_give_class_scores():
    p = experiments.recipe("base", width=0.1)
    X = torch.rand(2, 1, 28, 28)
    for head in experiments.HEADS:
        net = experiments.build_net(head, p, fc_hidden=32)
        assert net(X).shape == (2, 10)
    late = experiments.build_net("late", p)
    convs = [m for m in late[-3] if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [38, 38, 10]  # keep all 38 channels, reduce only at the end
    with pytest.raises(ValueError, match="head 'mlp' is not known"):
        experiments.build_net("mlp", p)


def test_recipes_follow_the_presets():
    d2l, improved = experiments.recipe("d2l"), experiments.recipe("improved")
    assert (d2l.lr, d2l.momentum, d2l.batch_norm, d2l.init) == (0.1, 0.0, False, "xavier")
    assert improved.schedule == presets.get_preset("improved").schedule and improved.flip
    assert d2l.arch == 28 and d2l.resize is None
    assert experiments.recipe("d2l", arch=224).resize == 224
    with pytest.raises(ValueError, match="recipe 'adam' is not known"):
        experiments.recipe("adam")


def test_live_run_trains_and_measures(fmnist):
    r = experiments.live_run(head="fc", train_size=64, num_epochs=1, test_size=64, fmnist=fmnist, fc_hidden=32)
    assert 0 <= r["test_acc"] <= 1 and 0 <= r["train_acc"] <= 1
    assert math.isclose(r["gap"], r["train_acc"] - r["test_acc"]) and len(r["loss_per_epoch"]) == 1
    gap = experiments.live_run(head="gap", train_size=64, num_epochs=1, test_size=64, fmnist=fmnist)
    assert gap["parameters"] == 87014  # the 28-px NiN at a quarter width with BatchNorm
    again = experiments.live_run(head="gap", train_size=64, num_epochs=1, test_size=64, fmnist=fmnist)
    assert again["test_acc"] == gap["test_acc"]  # same seed, same numbers on a CPU


@pytest.mark.parametrize("kwargs, says", [
    (dict(head="mlp"), "head 'mlp' is not known"),
    (dict(train_size=8), "train_size 8 is not allowed"),
    (dict(num_epochs=0), "num_epochs 0 is not allowed"),
    (dict(dropout=1.5), "dropout 1.5 is not allowed"),
    (dict(num_1x1=7), "num_1x1 7 is not allowed"),
])
def test_live_run_rejects_bad_values(kwargs, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        experiments.live_run(fmnist=object(), **kwargs)


def test_seed_spread_plot_shows_every_seed(tiny):
    groups = [(name, experiments.per_seed(tiny, name)) for name in ("base", "fc-head")]
    fig = viz.seed_spread({"test": groups, "gap": [("base", experiments.per_seed(tiny, "base", "gap"))]},
                          title="t", ylabel={"test": "test accuracy (fraction)", "gap": "gap (points)"}, chance=0.1)
    ax_test, ax_gap = fig.axes
    assert ax_test.get_ylabel() == "test accuracy (fraction)" and ax_gap.get_ylabel() == "gap (points)"
    points = [len(c.get_offsets()) for c in ax_test.collections if hasattr(c, "get_offsets")]
    assert sum(points) >= 2 * len(tiny["seeds"])
    assert fig._suptitle.get_text().startswith("t\npoints: one per seed")
    with pytest.raises(ValueError, match="at least one panel"):
        viz.seed_spread({})


@pytest.mark.skipif(not COMMITTED.exists(), reason="the CPU results are not committed yet")
def test_committed_cpu_results_are_complete_and_clean():
    results = check_results(experiments.load_results(COMMITTED), "cpu")
    assert set(results["configs"]) >= set(experiments.CONFIGS)
    assert results["settings"]["arch"] == 28 and results["settings"]["train_size"] >= 1000
    text = COMMITTED.read_text()
    for local in ("/work/", "/tmp/", "/root/", "/home/"):
        assert local not in text


def test_compare_says_whether_the_seeds_tell_two_configs_apart():
    def fake(values_a, values_b):
        runs = lambda vs: [{"seed": i, "test_acc": v} for i, v in enumerate(vs)]
        return {"configs": {"a": {"runs": runs(values_a)}, "b": {"runs": runs(values_b)}}}
    c = experiments.compare(fake([0.80, 0.82, 0.81], [0.85, 0.86, 0.87]), "a", "b")
    assert c["separated"] and math.isclose(c["diff"], 0.05) and c["t"] > 0
    assert "b is higher than a for every seed" in c["verdict"]
    c = experiments.compare(fake([0.80, 0.86, 0.83], [0.82, 0.84, 0.90]), "a", "b")
    assert not c["separated"] and "overlap: no clear difference with 3 seeds" in c["verdict"]
    assert "difference +" in experiments.format_comparison(c)
    c = experiments.compare(fake([0.5, 0.5, 0.5], [0.4, 0.4, 0.4]), "a", "b")
    assert c["t"] is None and "lower than a for every seed" in c["verdict"]


def test_experiment_panel_trains_on_click_and_keeps_every_run(fmnist):
    widgets = pytest.importorskip("nin_lib.widgets")
    panel = widgets.experiment_panel(fmnist, train_size=64, num_epochs=1)
    assert "No run yet" in panel.view()
    panel.button.click()
    panel.controls["head"].value = "fc"
    result = panel.train()
    assert len(panel.runs) == 2 and result["parameters"] == panel.runs[1]["parameters"] > panel.runs[0]["parameters"]
    assert panel.view().count("<tr>") == 3 and "test acc" in panel.view()
    panel.controls["lr"].value = -1.0
    assert panel.train() is None and len(panel.runs) == 2
    assert "Not possible" in panel.view() and "learning rate -1.0 is not allowed" in panel.view()
    assert not panel.button.disabled


def test_the_224_px_path_of_the_gpu_config_runs(tmp_path):
    """The GPU session's configuration (--full), shrunk to a few images so a CPU runs it in seconds."""
    out = tmp_path / "full.json"
    r = run_script("--full", "--only", "d2l-224", "--epochs", "1", "--train-size", "8", "--test-size", "8",
                   "--threads", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    results = check_results(experiments.load_results(out), "full", whole_experiments=False)
    c = results["configs"]["d2l-224"]
    assert c["image_size"] == 224 and c["parameters"] == 1_992_166 and c["preset"]["lr"] == 0.1
    assert results["settings"] is None and results["settings_224"]["train_size"] == 8


def test_grid_settings_are_checked():
    assert experiments.grid_settings("cpu", num_epochs=None)["num_epochs"] == experiments.MODES["cpu"]["num_epochs"]
    assert experiments.grid_settings("tiny", train_size=16)["batch_size"] == 16
    with pytest.raises(ValueError, match="train_size 0 is not allowed"):
        experiments.grid_settings("cpu", train_size=0)
    with pytest.raises(ValueError, match="test_size 20000 is not allowed"):
        experiments.grid_settings("cpu", test_size=20000)
    with pytest.raises(ValueError, match="mode 'huge' is not known"):
        experiments.grid_settings("huge")
