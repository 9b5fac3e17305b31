"""Lesson 06's experiments: the grid script (tiny config), its results file, the live run, the plot."""
import contextlib
import importlib.util
import io
import json
import math
import re
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from torch import nn

from nin_lib import checks, experiments, models, presets, records, train, verdicts, viz

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "experiments.py"
COMMITTED = records.PACKAGED / "experiments-cpu.json"


def _script():
    spec = importlib.util.spec_from_file_location("experiments_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args):
    """benchmarks/experiments.py's main, in this process (its exit status and what it printed)."""
    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _script().main(list(args))
    finally:
        torch.set_num_threads(threads)  # --threads sets them for the rest of the process
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


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
    rows = verdicts.experiment_rows(tiny, "num_1x1")
    assert [r["config"] for r in rows] == ["base", "one-1x1", "no-1x1"]
    assert all(r["runs"] == 3 and r["test_acc_min"] <= r["test_acc_mean"] <= r["test_acc_max"] for r in rows)
    assert verdicts.per_seed(tiny, "base") == [r["test_acc"] for r in tiny["configs"]["base"]["runs"]]
    with pytest.raises(checks.Refusal, match="experiment 'nope' is not in these results"):
        verdicts.experiment_rows(tiny, "nope")
    with pytest.raises(checks.Refusal, match="metric 'speed' is not known"):
        verdicts.per_seed(tiny, "base", "speed")


def test_load_results_rejects_missing_and_foreign_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    for name in ("none", "bad", "other"):
        with pytest.raises(checks.Refusal, match=f"record '{name}' is not a {experiments.FORMAT} file"):
            experiments.load_results(tmp_path / f"{name}.json")


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
    r = run_script(*args)
    assert r.returncode == 2
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_missing_gpu_is_an_error_not_a_fallback():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = run_script("--tiny", "--device", "cuda")
    assert r.returncode == 2 and "has no CUDA GPU" in r.stderr


def test_nets_of_each_head_give_class_scores():
    p = experiments.recipe("base", width=0.1)
    X = torch.rand(2, 1, 28, 28)
    for head in models.HEADS:
        net = p.with_overrides(head=head, fc_hidden=32).build_net()
        assert net(X).shape == (2, 10)
    late = p.with_overrides(head="late").build_net()
    convs = [m for m in late[-3] if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [38, 38, 10]  # keep all 38 channels, reduce only at the end
    with pytest.raises(checks.Refusal, match="head 'mlp' is not known"):
        p.with_overrides(head="mlp")


def _class_score_layer(net):
    """The last layer before global average pooling (NiN, late head), or the last layer (FC head)."""
    layers = list(net)
    if any(isinstance(m, nn.AdaptiveAvgPool2d) for m in layers):
        return layers[-3][-1]
    return layers[-1]


@pytest.mark.parametrize("name", experiments.config_names(full=True))
def test_every_configuration_builds_the_net_its_name_promises(name):
    settings = experiments.grid_settings("full" if name in experiments.CONFIGS_224 else "tiny")
    p = experiments.config_preset(name, settings)
    net = p.build_net("meta")
    kinds = [type(m) for m in net.modules()]
    assert net(torch.zeros(1, 1, p.image_size(), p.image_size(), device="meta")).shape == (1, 10)
    label, recipe_name, changes = experiments.CONFIGS.get(name) or experiments.CONFIGS_224[name]
    base = experiments.recipe(recipe_name, arch=p.arch)
    assert p.final_relu == base.final_relu  # the recipe's own choice (improved: no ReLU on the class scores)
    assert isinstance(_class_score_layer(net), nn.ReLU) == (p.final_relu and p.head != "fc"), name
    assert (nn.Linear in kinds) == (p.head == "fc") and (nn.BatchNorm2d in kinds) == p.batch_norm
    assert (nn.Dropout in kinds) and all(m.p == p.dropout for m in net.modules() if isinstance(m, nn.Dropout))
    blocks = [m for m in net if isinstance(m, nn.Sequential)]
    mlp = [[c.kernel_size for c in b if isinstance(c, nn.Conv2d)][1:] for b in blocks[:3]]  # after the k×k conv
    assert mlp == [[(p.mlp_kernel, p.mlp_kernel)] * p.num_1x1] * 3, (name, mlp)
    if name.startswith("improved"):
        assert not p.final_relu and not isinstance(_class_score_layer(net), nn.ReLU)


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_builds_the_net_its_settings_promise(name):
    p = presets.get_preset(name)
    net = p.build_net("meta")
    assert isinstance(_class_score_layer(net), nn.ReLU) == p.final_relu
    assert net[-3][0].out_channels == 10 and isinstance(net[-2], nn.AdaptiveAvgPool2d)
    assert (nn.BatchNorm2d in [type(m) for m in net.modules()]) == p.batch_norm
    assert str(p.build_net("meta")) == str(models.nin(**p.net_options()))


def test_recipes_follow_the_presets():
    d2l, improved = experiments.recipe("d2l"), experiments.recipe("improved")
    assert (d2l.lr, d2l.momentum, d2l.batch_norm, d2l.init) == (0.1, 0.0, False, "xavier")
    assert improved.schedule == presets.get_preset("improved").schedule and improved.flip
    assert d2l.arch == 28 and d2l.resize is None
    assert experiments.recipe("d2l", arch=224).resize == 224
    with pytest.raises(checks.Refusal, match="recipe 'adam' is not known"):
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
    (dict(head="mlp"), "head 'mlp' is not known"),  # checked once, by models.nin
    (dict(train_size=0), "train_size 0 is not allowed"),  # the live run's own value
    (dict(train_size=70000), "train_size 70000 is not allowed"),
    (dict(num_epochs=0), "num_epochs 0 is not allowed"),  # checked once, by the preset
    (dict(lr=-1.0), "learning rate -1.0 is not allowed"),
])
def test_live_run_rejects_bad_values_before_touching_the_data(kwargs, says):
    with pytest.raises(checks.Refusal, match=re.escape(says)):
        experiments.live_run(fmnist=object(), **kwargs)


def test_live_run_measures_a_run_stopped_by_its_callbacks(fmnist):
    stop = train.MaxSteps(1)
    r = experiments.live_run(train_size=64, num_epochs=2, test_size=64, fmnist=fmnist, callbacks=[stop])
    assert r["stopped"].startswith("reached max_steps=1") and r["epochs_trained"].startswith("1 of 2 batches")
    assert 0 <= r["test_acc"] <= 1


def test_seed_spread_plot_shows_every_seed(tiny):
    groups = [(name, verdicts.per_seed(tiny, name)) for name in ("base", "fc-head")]
    fig = viz.seed_spread({"test": groups, "gap": [("base", verdicts.per_seed(tiny, "base", "gap"))]},
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
    assert results == experiments.recorded("experiments-cpu")
    assert results["configs"]["improved"]["preset"]["final_relu"] is False  # the nets the grid trained
    assert all("final_relu" in c["preset"] and "head" in c["preset"] for c in results["configs"].values())
    assert set(results["configs"]) >= set(experiments.CONFIGS)
    assert results["settings"]["arch"] == 28 and results["settings"]["train_size"] >= 1000
    text = COMMITTED.read_text()
    for local in ("/work/", "/tmp/", "/root/", "/home/"):
        assert local not in text


def test_compare_says_whether_the_seeds_tell_two_configs_apart():
    def fake(values_a, values_b):
        runs = lambda vs: [{"seed": i, "test_acc": v} for i, v in enumerate(vs)]
        return {"configs": {"a": {"runs": runs(values_a)}, "b": {"runs": runs(values_b)}}}
    c = verdicts.compare(fake([0.80, 0.82, 0.81], [0.85, 0.86, 0.87]), "a", "b")
    assert c["separated"] and math.isclose(c["diff"], 0.05) and c["t"] > 0
    assert "b is higher than a for every seed" in c["verdict"]
    c = verdicts.compare(fake([0.80, 0.86, 0.83], [0.82, 0.84, 0.90]), "a", "b")
    assert not c["separated"] and "overlap: no clear difference with 3 seeds" in c["verdict"]
    assert "difference +" in verdicts.format_comparison(c)
    c = verdicts.compare(fake([0.5, 0.5, 0.5], [0.4, 0.4, 0.4]), "a", "b")
    assert c["t"] is None and "lower than a for every seed" in c["verdict"]


def picture(panel):
    """The experiment panel's picture: (its title and tick labels, the recorded seeds' accuracies, its diamonds')."""
    items = panel.result()
    assert isinstance(items[0], Figure), items[0].data
    ax = items[0].axes[0]
    dots = {c.get_label().startswith("your runs"): [float(y) for x, y in c.get_offsets()] for c in ax.collections
            if isinstance(c, PathCollection)}
    words = items[0]._suptitle.get_text() + " | " + " | ".join(t.get_text() for t in ax.get_xticklabels())
    return words, dots[False], dots.get(True, [])


def test_experiment_panel_trains_on_click_and_keeps_every_run(fmnist):
    widgets = pytest.importorskip("nin_lib.widgets")
    panel = widgets.ExperimentPanel(fmnist, train_size=64, num_epochs=1)
    assert "No run yet" in panel.view() and picture(panel)[2] == []
    panel.train_button.click()  # trains in a background thread
    assert panel.thread is not None
    first = panel.wait(timeout=300)
    assert picture(panel)[2] == [pytest.approx(first["test_acc"])]  # the run is a diamond beside the seeds
    panel.controls["head"].value = "fc"
    assert picture(panel)[2] == []  # the FC head's recorded seeds: the GAP run is not among them
    assert panel.train() is True
    result = panel.wait(timeout=300)
    words, _, mine = picture(panel)
    assert mine == [pytest.approx(result["test_acc"])] and "fc-head" in words and "(1 of 2)" in words
    assert len(panel.runs) == 2 and result["parameters"] == panel.runs[1]["parameters"] > panel.runs[0]["parameters"]
    assert panel.view().count("<tr>") == 3 and "test acc" in panel.view()
    assert panel.progress.value == panel.progress.max == 2  # 64 images, batch 32, 1 epoch
    panel.controls["lr"].value = -1.0
    assert panel.train() is False and len(panel.runs) == 2
    assert "Not possible" in panel.view() and "learning rate -1.0 is not allowed" in panel.view()
    assert not panel.train_button.disabled


@pytest.mark.parametrize("control, value, says", [
    ("head", "fc", "closest to your settings: fc-head"), ("batch_norm", False, "closest to your settings: no-bn"),
    ("dropout", 0.0, "closest to your settings: no-dropout"), ("num_1x1", 3, "num_1x1 3 vs 2"),
    ("train_size", 1024, "train_size 1,024 vs 2,000"), ("num_epochs", 20, "train_size 512 vs 2,000, batch_size 32 "
                                                                          "vs 64, test_size"),
    ("lr", 0.05, "lr 0.05 vs 0.1"), ("seed", 2, "your next run: seed 2")])
def test_experiment_panel_shows_the_recorded_seeds_and_every_control_changes_them(fmnist, control, value, says):
    widgets = pytest.importorskip("nin_lib.widgets")
    panel = widgets.ExperimentPanel(fmnist)
    recorded = experiments.recorded("experiments-cpu")
    words, seeds, mine = picture(panel)  # the default picture: the base configuration's seeds, no run yet
    assert "closest to your settings: base" in words and "train_size 512 vs 2,000" in words and "seed 0" in words
    assert seeds == verdicts.per_seed(recorded, "base") and mine == [] and "(3 seeds)" in words
    panel.controls[control].value = value
    changed, seeds, _ = picture(panel)
    assert changed != words and says in changed
    name = changed.split("closest to your settings: ")[1].split(" ")[0]
    assert seeds == verdicts.per_seed(recorded, name)


def test_experiment_panel_shows_a_bad_value_as_one_sentence_in_place_of_the_picture(fmnist):
    widgets = pytest.importorskip("nin_lib.widgets")
    panel = widgets.ExperimentPanel(fmnist)
    panel.controls["lr"].value = -1.0  # typed: the picture gives way to the sentence at once
    for _ in range(2):  # and pressing Train says it once, not twice
        (item,) = panel.result()
        assert item.data.count("learning rate -1.0 is not allowed") == 1 and "a bug" not in item.data
        assert panel.train() is False and panel.runs == []
    panel.controls["lr"].value = 0.1
    assert "closest to your settings: base" in picture(panel)[0]


def test_experiment_panel_stop_keeps_what_was_trained(fmnist):
    widgets = pytest.importorskip("nin_lib.widgets")
    panel = widgets.ExperimentPanel(fmnist, train_size=2048, num_epochs=20)

    class StopAfter(presets.train.Callback):
        def on_batch_end(self, step):
            if step.global_step == 3:
                panel.stop()

    panel.on_batch = lambda run: StopAfter().on_batch_end(run)
    assert panel.train() is True
    result = panel.wait(timeout=300)
    assert result["stopped"].startswith("stopped by request in epoch 1, batch 3/64")
    assert result["epochs_trained"] == "3 of 64 batches of epoch 1" and len(panel.runs) == 1
    assert 0 <= result["test_acc"] <= 1


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
    for overrides, says in ((dict(train_size=0), "train_size 0 is not allowed"),
                            (dict(test_size=20000), "test_size 20000 is not allowed; use a whole number from 1 to"),
                            (dict(num_epochs=0), "num_epochs 0 is not allowed"),  # the grid's presets check the rest
                            (dict(colour=1), "grid setting 'colour' is not known")):
        with pytest.raises(checks.Refusal, match=says):
            experiments.grid_settings("cpu", **overrides)
    with pytest.raises(checks.Refusal, match="mode 'huge' is not known"):
        experiments.grid_settings("huge")


def fake_grid(**configs):
    """Results with only what the verdicts read: per configuration its parameters, MACs and every seed's numbers
    (``name=dict(test_acc=[...], gap=[...], parameters=..., stalled=[...])``)."""
    out = {}
    for name, values in configs.items():
        per_metric = {m: v for m, v in values.items() if m in experiments.METRICS}
        n = len(next(iter(per_metric.values())))
        stalled = values.get("stalled", [False] * n)
        runs = [{"seed": i, "stalled": stalled[i], **{m: v[i] for m, v in per_metric.items()}} for i in range(n)]
        out[name] = {"runs": runs, "parameters": values.get("parameters", 1000),
                     "macs_per_image": values.get("macs_per_image", 5000)}
    return {"configs": out}


def test_evidence_says_supported_contradicted_or_not_told_with_its_numbers():
    grid = fake_grid(base=dict(parameters=100, gap=[0.05, 0.06, 0.07], test_acc=[0.80, 0.86, 0.83]),
                     **{"fc-head": dict(parameters=3100, gap=[0.10, 0.11, 0.12], test_acc=[0.82, 0.84, 0.90])})
    lines = verdicts.evidence(grid, "head")  # claims: fewer parameters, a narrower gap, a higher test accuracy
    assert len(lines) == 4
    assert lines[0].startswith("Supported by the counts") and "base 100, fc-head 3,100" in lines[0]
    assert "fc-head has 31.0× as many" in lines[0]
    assert lines[1].startswith("Supported by the seeds") and "base 0.060 ± 0.010, fc-head 0.110 ± 0.010" in lines[1]
    assert "base is lower for every seed." in lines[1]
    assert lines[2].startswith("Not told apart by the seeds")
    assert "the seeds overlap, so 3 seeds cannot tell" in lines[2]
    assert lines[3] == "Overall: of 3 claims, 2 supported, 0 contradicted, 1 not told apart by these results."
    assert "stalled" not in " ".join(lines)  # no run stalled, so no count is shown

    reversed_gap = fake_grid(base=dict(parameters=100, gap=[0.10, 0.11, 0.12], test_acc=[0.80, 0.81, 0.82]),
                             **{"fc-head": dict(parameters=3100, gap=[0.05, 0.06, 0.07], test_acc=[0.85, 0.86, 0.87])})
    judged = [verdicts.judge(reversed_gap, c) for c in verdicts.experiment("head")["claims"]]
    assert [v["outcome"] for v in judged] == ["supports", "contradicts", "contradicts"]
    assert judged[1]["sentence"].startswith("Contradicted by the seeds")
    assert "base is higher for every seed, the opposite of the claim." in judged[1]["sentence"]
    assert judged[2]["comparison"]["separated"] and math.isclose(judged[2]["comparison"]["diff"], -0.05)
    assert verdicts.overall(judged).startswith("Overall: of 3 claims, 1 supported, 2 contradicted, 0 not told")


def test_verdicts_count_stalled_runs_and_refuse_what_is_not_there():
    grid = fake_grid(base=dict(test_acc=[0.85, 0.86, 0.84], final_loss=[0.2, 0.3, 0.25]),
                     **{"no-bn": dict(test_acc=[0.10, 0.45, 0.11], final_loss=[2.3, 1.4, 2.3],
                                      stalled=[True, False, True])})
    first = verdicts.evidence(grid, "batch_norm")[0]
    assert first.startswith("Supported by the seeds") and "stalled at chance: base 0 of 3 runs, no-bn 2 of 3" in first
    with pytest.raises(checks.Refusal, match="configuration 'fc-head' is not in these results"):
        verdicts.evidence(grid, "head")
    with pytest.raises(checks.Refusal, match="experiment 'speed' is not known; choose one of head, "):
        verdicts.evidence(grid, "speed")
    with pytest.raises(checks.Refusal, match="expected direction 'same' is not known"):
        verdicts.judge(grid, {"config": "base", "against": "no-bn", "metric": "test_acc", "expect": "same",
                                 "says": "x"})


def test_the_spread_is_set_beside_the_other_differences_of_means():
    grid = fake_grid(d2l=dict(test_acc=[0.1, 0.3, 0.5]), **{"no-bn": dict(test_acc=[0.20, 0.21, 0.22])},
                     base=dict(test_acc=[0.80, 0.81, 0.82], gap=[0.1, 0.1, 0.1]),
                     improved=dict(test_acc=[0.81, 0.82, 0.83], gap=[0.05, 0.05, 0.05]))
    # d2l's spread is 0.2; the differences not involving d2l: base - no-bn 0.6, improved - base 0.01
    line = verdicts.spread_against_differences(grid, "d2l")
    assert line.startswith("The spread of d2l's test accuracy over 3 seeds is 0.200 (its seeds run from 0.100 to "
                           "0.500)")
    assert "larger than 1 of the 2 differences of mean test accuracy" in line
    assert "(the largest: base vs no-bn, 0.600)" in line
    lines = verdicts.evidence(grid, "recipe")
    assert line in lines and lines[-1].startswith("Overall: of 4 claims")
    wide = fake_grid(d2l=dict(test_acc=[0.1, 0.9, 0.5]), base=dict(test_acc=[0.80, 0.81, 0.82]),
                     improved=dict(test_acc=[0.81, 0.82, 0.83]))
    assert "larger than every one of the 1 differences" in verdicts.spread_against_differences(wide, "d2l")
    alone = fake_grid(d2l=dict(test_acc=[0.1, 0.3, 0.5]))
    assert "no other difference of means" in verdicts.spread_against_differences(alone, "d2l")


def test_every_claim_names_its_experiments_configurations_and_a_known_metric():
    for e in experiments.EXPERIMENTS + experiments.EXPERIMENTS_224:
        assert e["claims"], e["key"]
        for c in e["claims"]:
            assert {c["config"], c["against"]} <= set(e["configs"]) and c["config"] != c["against"], e["key"]
            assert c["metric"] in experiments.METRICS + tuple(verdicts.COUNTED)
            assert c["expect"] in ("higher", "lower")
            assert c["says"] and not c["says"].startswith("and ")  # each verdict reads on its own
        assert set(e.get("spread", ())) <= set(e["configs"])
    for e in experiments.EXPERIMENTS_224:
        twin = verdicts.twin(e["key"])
        assert twin is not None and all(c in experiments.CONFIGS for c in verdicts.experiment(twin)["configs"])
    assert verdicts.twin("head") is None and verdicts.twin("head_224") == "head"
    head = verdicts.experiment("head_224")  # derived from its 28-px twin, every configuration at 224 px
    assert head["title"] == "GAP head vs fully connected head at 224 px (全局平均池化 vs 全连接层)"
    assert head["configs"] == ["base-224", "fc-head-224"] and head["book"] == verdicts.experiment("head")["book"]
    assert experiments.CONFIGS_224["no-bn-224"] == ("no BatchNorm (base recipe otherwise), at 224 px", "base",
                                                    {"batch_norm": False})
    mlp = verdicts.experiment("mlp_kernel")
    assert mlp["configs"] == ["base", "3x3-mlp"] and experiments.CONFIGS["3x3-mlp"][2] == {"mlp_kernel": 3}


@pytest.mark.skipif(not COMMITTED.exists(), reason="the CPU results are not committed yet")
def test_every_28_px_experiment_has_verdicts_on_the_committed_grid():
    results = experiments.recorded("experiments-cpu")
    described = verdicts.provenance(results)
    assert described[2] == f"command: {results['command']}" and results["created"][:10] in described[1]
    for e in experiments.EXPERIMENTS:
        lines = verdicts.evidence(results, e["key"])
        assert len(lines) == len(e["claims"]) + len(e.get("spread", ())) + 1
        assert all(line.split(":")[0] in ("Supported by the seeds", "Contradicted by the seeds",
                                           "Not told apart by the seeds", "Supported by the counts",
                                           "Contradicted by the counts", "Overall") for line in lines
                   if not line.startswith("The spread"))
