"""benchmarks/views.py: every view timed in a subprocess, the values its interactions take, its bad arguments and
the cgroup it makes for --one-cpu (built and checked without root; the --one-cpu run itself is not tested here)."""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import ipywidgets as W
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "views.py"
GiB = 2**30

spec = importlib.util.spec_from_file_location("views_script", SCRIPT)
views = importlib.util.module_from_spec(spec)
spec.loader.exec_module(views)


def table_rows(text):
    """The markdown table's rows as lists of cells, without the header and the rule."""
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if not line.startswith("| ---")]


@pytest.mark.slow
def test_every_view_is_timed_over_the_interactions_asked_for(tmp_path, fmnist):
    out = tmp_path / "views.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--interactions", "2", "--json", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "NIN_FAST": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    results = json.loads(out.read_text())
    ran, skipped = [v["view"] for v in results["views"]], [s["view"] for s in results["skipped"]]
    assert sorted(ran + skipped) == sorted(views.VIEWS)
    assert {"conv_cost", "nin_params", "input_size", "adaptive_windows", "experiment"} <= set(ran)
    assert all(f"skipped {name}: " in r.stdout for name in skipped)
    rows = table_rows(r.stdout)
    assert [row[0] for row in rows] == ran
    for view, lesson, moved, n, median, worst, *_ in rows:
        assert n == "2" and moved, view
        median, worst = (float(t.removesuffix(" ms")) for t in (median, worst))
        assert math.isfinite(median) and math.isfinite(worst) and 0 < median <= worst, view
    assert all(v["n"] == 2 and v["peak_rss_bytes"] > 0 for v in results["views"])
    machine = results["machine"]
    assert machine["cpu_count"] >= 1 and machine["torch_threads"] >= 1 and machine["torch"] and machine["date"]
    assert results["command"] == f"python benchmarks/views.py --interactions 2 --json {out}"


@pytest.mark.parametrize("args, says", [
    (["--only", "conv_cost", "sliders"], "--only 'sliders' is not a view; the views are conv_cost, one_pixel"),
    (["--interactions", "0"], "--interactions must be a whole number of at least 1, not 0"),
])
def test_bad_arguments_are_refused_with_one_sentence(args, says, capsys):
    assert views.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(says) and err.count("\n") == 1


def test_one_cpu_without_root_says_why_in_one_sentence(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert views.main(["--one-cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--one-cpu needs root to make cgroups (this is uid 1000)") and err.count("\n") == 1


def test_the_cgroup_gets_one_cpu_of_quota_and_2_gib():
    assert views.limit_writes("/g/cpu/x", "/g/memory/x") == [
        (Path("/g/cpu/x/cpu.cfs_period_us"), 100000), (Path("/g/cpu/x/cpu.cfs_quota_us"), 100000),
        (Path("/g/memory/x/memory.limit_in_bytes"), 2 * GiB)]


def test_the_child_moves_itself_into_both_groups_then_runs_the_script(tmp_path):
    cpu, memory = tmp_path / "cpu", tmp_path / "memory"
    for folder in (cpu, memory):
        folder.mkdir()
        (folder / "tasks").write_text("")
    command = views.child_command(cpu, memory, ["--only", "nothing"])
    assert command[-3:] == [str(SCRIPT), "--only", "nothing"]
    r = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--only 'nothing' is not a view" in r.stderr  # the script ran, as the shell's pid
    pid = (cpu / "tasks").read_text().strip()
    assert pid.isdigit() and (memory / "tasks").read_text().strip() == pid


def take(control, n):
    values = views.steps(control)
    return [next(values) for _ in range(n)]


def test_sliders_step_up_and_back_within_their_range_and_lists_cycle():
    assert take(W.IntSlider(value=96, min=1, max=512), 7) == [97, 98, 99, 98, 97, 96, 97]
    assert take(W.IntSlider(value=2, min=0, max=3), 6) == [1, 0, 1, 2, 1, 0]  # more room below than above
    assert take(W.IntSlider(value=4, min=0, max=4), 4) == [3, 2, 1, 2]  # at its top: down first
    assert take(W.IntSlider(value=0, min=0, max=1), 3) == [1, 0, 1]  # what room there is
    assert take(W.FloatSlider(value=0.5, min=0.0, max=0.9, step=0.1), 6) == [0.6, 0.7, 0.8, 0.7, 0.6, 0.5]
    assert take(W.Dropdown(options=[("GAP", "gap"), ("FC", "fc"), ("late", "late")], value="fc"), 4) == [
        "late", "gap", "fc", "late"]
    assert take(W.Checkbox(value=True), 3) == [False, True, False]
    assert take(W.IntText(value=0), 4) == [1, 2, 1, 0]
    assert take(W.FloatText(value=0.1), 3) == [0.2, 0.1, 0.05]
