"""The benchmark scripts: benchmarks/lessons.py (reading executed lessons, the goals, the RESULTS.md section, its
cgroups and real runs) and one tiny run of benchmarks/bench.py."""
import contextlib
import importlib.util
import io
import json
import os
import platform
import shutil
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from nin_lib import checks

ROOT = Path(__file__).resolve().parent.parent
GiB = 2**30


def _script(name):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lessons, bench = _script("lessons"), _script("bench")


def run_script(*args, main=lessons.main):
    """A benchmark script's command line in this process: exit status and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def notebook(*cells):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def code(*outputs, seconds=None):
    cell = new_code_cell("pass", outputs=list(outputs))
    if seconds is not None:
        cell.metadata["execution"] = {"iopub.execute_input": "2026-12-01T10:00:00.000000Z",
                                      "shell.execute_reply": f"2026-12-01T10:00:{seconds:09.6f}Z"}
    return cell


def stream(text):
    return new_output("stream", name="stdout", text=text)


# ---------------------------------------------------------------------------------------------
# Reading what the lessons print

@pytest.mark.parametrize("text, acc", [
    ("epoch 1/1: loss 0.910, train acc 0.826, test acc 0.902, 55.0 s", 0.902),
    ("loss 2.301, train acc 0.096, test acc 0.090", 0.090),
    ("epoch 1: test acc 0.500\nepoch 2: test acc 0.750\n", 0.750),
    ("test accuracy: 0.859", 0.859),
    ("\r 50%|#####     | test acc=0.812", 0.812),
    ("train acc 0.826 only", None),
    ("test acc       train acc             gap", None),
])
def test_the_last_test_accuracy_a_text_prints(text, acc):
    assert lessons.last_accuracy(text) == acc


def test_accuracies_are_listed_per_code_cell_counting_every_cell():
    nb = notebook(new_markdown_cell("the lesson prints test acc 0.111 in prose"),
                  code(stream("loss 2.301, train acc 0.096, test acc 0.090\n")),
                  code(stream("no accuracy here\n")),
                  code(stream("epoch 1: test acc 0.700\n"),
                       new_output("execute_result", data={"text/plain": "'test acc 0.880'"}, execution_count=3)),
                  code(new_output("display_data", data={"text/plain": ["test accuracy ", "0.5"]})))
    assert lessons.accuracies(nb) == [(1, 0.090), (3, 0.880), (4, 0.5)]


def test_first_error_and_slowest_cell():
    nb = notebook(new_markdown_cell("x"), code(seconds=1.5), code(seconds=12.25),
                  code(new_output("error", ename="ValueError", evalue="batch_size 0 is not allowed\nmore",
                                  traceback=[])), code(seconds=3))
    assert lessons.first_error(nb) == (3, "ValueError: batch_size 0 is not allowed")
    assert lessons.slowest_cell(nb) == (2, 12.2)
    assert lessons.first_error(notebook(code(stream("ok")))) is None
    assert lessons.slowest_cell(notebook(code())) is None


# ---------------------------------------------------------------------------------------------
# The goals and the table

def row(lesson, wall, peak, error=None, mode="binder", accuracy=()):
    return {"lesson": lesson, "mode": mode, "limited": mode == "binder", "wall_s": wall, "cpu_s": wall * 0.9,
            "peak_bytes": peak, "accuracy": [list(a) for a in accuracy], "slowest_cell": [3, wall / 2],
            "error": error}


def test_goal_check_measures_each_row_and_the_total():
    rows = [row("01", 100, GiB), row("05", 150, GiB), row("00", 60, 2 * GiB), row("06", 30, GiB, error="boom"),
            row("03", 10, None)]
    check = lessons.goal_check(rows)
    by = {lesson["lesson"]: lesson for lesson in check["lessons"]}
    assert by["01"] == {"lesson": "01", "wall_over_s": -20, "peak_over_bytes": GiB - int(1.2 * GiB), "ok": True}
    assert by["05"]["wall_over_s"] == 30 and not by["05"]["ok"]
    assert by["00"]["peak_over_bytes"] == 2 * GiB - int(1.2 * GiB) > 0 and not by["00"]["ok"]
    assert not by["06"]["ok"] and not by["03"]["ok"]  # an error, or a peak that was not measured, misses the goal
    assert check["total_wall_s"] == 350 and check["total_over_s"] == -130 and check["ok"] is False
    assert lessons.goal_check([row(f"0{i}", 96, GiB) for i in range(5)])["ok"] is True  # 480 s in all
    five = lessons.goal_check([row(f"0{i}", 100, GiB) for i in range(5)])  # each within 120 s, 500 s in all
    assert all(lesson["ok"] for lesson in five["lessons"]) and five["total_over_s"] == 20 and five["ok"] is False


def results_for(binder_rows, plain_rows=(), sees=True):
    probe = {"cpu_limit": [1, "CPU quota 1"], "cpu_quota": 1.0, "memory_limit": 2 * GiB,
             "sees_cpu_quota": sees, "sees_memory_limit": sees}
    return {"date": "2026-12-01T10:00:00+00:00", "command": "python benchmarks/lessons.py", "fast": False,
            "machine": {"cpu": "Some CPU", "cpu_count": 16, "platform": "Linux", "python": "3.11", "torch": "2.5",
                        "load_average": [0.5, 0.4, 0.3]},
            "modes": {"plain": {"cgroup": "v1", "limited": False, "unlimited_because": None,
                                "library_sees": None, "lessons": list(plain_rows)},
                      "binder": {"cgroup": "v1", "limited": True, "unlimited_because": None,
                                 "library_sees": probe, "lessons": list(binder_rows)}}}


def test_the_table_has_a_row_per_lesson_per_mode_totals_and_the_goal_check():
    results = results_for([row("01_x", 20, GiB // 2), row("05_y", 150, int(1.5 * GiB), accuracy=[(14, 0.902)])],
                          [row("01_x", 10, GiB // 2, mode="plain"),
                           row("05_y", 50, GiB, mode="plain", error="cell 3: ValueError: a|b")])
    text = lessons.markdown(results)
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("| 0")]
    assert [r.split(" | ")[:2] for r in rows] == [["| 01_x", "plain"], ["| 01_x", "binder"], ["| 05_y", "plain"],
                                                   ["| 05_y", "binder"]]
    assert "| 150 s | **30 s over** |" in rows[3] and "1.50 GiB | **0.30 GiB over** |" in rows[3]
    assert "0.902 (cell 14)" in rows[3] and "| 100 s under |" in rows[1]
    assert "error: cell 3: ValueError: a\\|b" in rows[2]  # a | in the message does not break the table
    assert any(line.startswith("| **all 2** | binder | **170 s** | 310 s under 8 min") for line in lines)
    assert "Machine: 16 CPUs of Some CPU" in text and "Command: `python benchmarks/lessons.py`" in text
    assert "it sees the limits." in text
    assert "1 of 2 lessons within 120 s, 1 of 2 within 1.2 GiB" in text and "**not all goals met**" in text
    assert "**it does not see the limits**" in lessons.markdown(results_for([row("01_x", 20, GiB)], sees=False))
    assert "**all goals met**" in lessons.markdown(results_for([row("01_x", 20, GiB)]))


def test_the_section_is_written_between_the_markers_of_a_copy(tmp_path):
    copy = tmp_path / "RESULTS.md"
    shutil.copy(ROOT / "benchmarks" / "RESULTS.md", copy)
    original = copy.read_text()
    if lessons.START_MARKER in original:
        original = original[:original.index(lessons.START_MARKER)].rstrip("\n") + "\n"
        copy.write_text(original)
    lessons.write_section(copy, "## Lessons\n\nfirst table\n")
    first = copy.read_text()
    assert first.startswith(original.rstrip("\n"))  # what was there stays as it was
    assert first.endswith(f"{lessons.START_MARKER}\n## Lessons\n\nfirst table\n{lessons.END_MARKER}\n")
    copy.write_text(first + "\n## A later section\n\nkept\n")
    lessons.write_section(copy, "## Lessons\n\nsecond table")
    second = copy.read_text()
    assert second.count(lessons.START_MARKER) == 1 and second.count(lessons.END_MARKER) == 1
    assert "first table" not in second and "second table" in second
    assert second.startswith(original.rstrip("\n")) and second.endswith("## A later section\n\nkept\n")
    assert not list(tmp_path.glob("*.tmp"))


def test_a_results_file_with_one_marker_is_refused(tmp_path):
    broken = tmp_path / "RESULTS.md"
    broken.write_text(f"# Results\n\n{lessons.START_MARKER}\nold\n")
    with pytest.raises(ValueError, match="has only one of the markers"):
        lessons.write_section(broken, "new")
    assert broken.read_text() == f"# Results\n\n{lessons.START_MARKER}\nold\n"


@pytest.mark.parametrize("args, says", [
    (("--only", "99"), "--only '99'"),
    (("--command",), "--command needs"),
    (("--modes", "gpu"), "'gpu'"),
])
def test_the_scripts_bad_values_are_refused(args, says):
    with pytest.raises(checks.Refusal, match=says):
        lessons.main(list(args))


def test_lessons_are_picked_by_stem_number_file_name_or_path():
    first = ROOT / "notebooks" / "01_one_by_one_convolutions.ipynb"
    for name in ("01", "01_one_by_one_convolutions", "01_one_by_one_convolutions.ipynb", str(first)):
        assert lessons.resolve_lessons([name]) == [first]
    assert lessons.resolve_lessons(["01", "01_one_by_one_convolutions"]) == [first]
    assert lessons.resolve_lessons(None) == sorted((ROOT / "notebooks").glob("*.ipynb"))


# ---------------------------------------------------------------------------------------------
# Where cgroups can be made, and the limits they get

def fake_cgroups(tmp_path, v1=True):
    """A mountinfo and a /proc/self/cgroup describing a v1 or v2 tree under tmp_path."""
    if v1:
        for folder in ("cpu", "memory/pod/own"):  # the memory tree is mounted from /kubepods down
            (tmp_path / folder).mkdir(parents=True)
        mounts = (f"30 25 0:26 / {tmp_path / 'cpu'} rw,relatime - cgroup cgroup rw,cpu\n"
                  f"31 25 0:27 /kubepods {tmp_path / 'memory'} rw,relatime - cgroup cgroup rw,memory\n")
        proc = "4:memory:/kubepods/pod/own\n1:cpu:/\n0::/\n"
    else:
        (tmp_path / "unified" / "own").mkdir(parents=True)
        (tmp_path / "unified" / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (tmp_path / "unified" / "cgroup.subtree_control").write_text("cpu memory\n")
        (tmp_path / "unified" / "own" / "cgroup.controllers").write_text("")
        mounts = f"29 25 0:25 / {tmp_path / 'unified'} rw - cgroup2 cgroup2 rw\n"
        proc = "0::/own\n"
    (tmp_path / "mountinfo").write_text(mounts)
    (tmp_path / "cgroup").write_text(proc)
    return dict(mountinfo=tmp_path / "mountinfo", proc=tmp_path / "cgroup")


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def test_v1_groups_go_under_the_own_group_of_each_controller(tmp_path, as_root):
    files = fake_cgroups(tmp_path)
    version, parents = lessons.find_parents(("cpu", "memory"), **files)
    assert version == "v1"
    assert parents == {"cpu": tmp_path / "cpu", "memory": tmp_path / "memory" / "pod" / "own"}


def test_v2_groups_go_where_the_controllers_are_delegated(tmp_path, as_root):
    files = fake_cgroups(tmp_path, v1=False)
    assert lessons.find_parents(("cpu", "memory"), **files) == ("v2", tmp_path / "unified")


def test_without_cgroups_the_reason_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(lessons.CgroupUnavailable, match=r"^not running as root \(uid 1000\)"):
        lessons.find_parents(("memory",), **fake_cgroups(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    (tmp_path / "empty").write_text("")
    with pytest.raises(lessons.CgroupUnavailable, match="no cgroup filesystem is mounted"):
        lessons.find_parents(("memory",), mountinfo=tmp_path / "empty", proc=tmp_path / "cgroup")
    (tmp_path / "mountinfo").write_text(f"30 25 0:26 / {tmp_path / 'cpu'} rw - cgroup cgroup rw,cpu\n")
    with pytest.raises(lessons.CgroupUnavailable, match="with the cpu and memory controllers"):
        lessons.find_parents(("cpu", "memory"), mountinfo=tmp_path / "mountinfo", proc=tmp_path / "cgroup")


def test_binder_limits_are_one_cpu_of_quota_and_2_gib_without_swap():
    assert lessons.limit_files("v1", lessons.LIMITS["binder"]) == [
        ("cpu", "cpu.cfs_period_us", 100000), ("cpu", "cpu.cfs_quota_us", 100000),
        ("memory", "memory.limit_in_bytes", 2 * GiB), ("memory", "memory.memsw.limit_in_bytes", 2 * GiB)]
    assert lessons.limit_files("v2", lessons.LIMITS["binder"]) == [
        ("cpu", "cpu.max", "100000 100000"), ("memory", "memory.max", 2 * GiB), ("memory", "memory.swap.max", 0)]
    assert lessons.limit_files("v1", None) == []


# ---------------------------------------------------------------------------------------------
# Real runs: small notebooks in a kernel (no cgroup: the process tree's RSS), and lesson 01 in fast mode

def test_a_failing_and_a_slow_notebook_are_rows_that_say_so(tmp_path):
    fails = tmp_path / "fails.ipynb"
    nbformat.write(notebook(code(), new_code_cell("print('epoch 1/1: loss 0.9, train acc 0.8, test acc 0.902')"),
                            new_code_cell("raise ValueError('batch_size 0 is not allowed')")), fails)
    slow = tmp_path / "slow.ipynb"
    nbformat.write(notebook(new_code_cell("print('test acc 0.5')"), new_code_cell("import time; time.sleep(60)"),
                            new_code_cell("print('not reached')")), slow)
    failed = lessons.measure_lesson(fails, "plain", None, 60, True)
    assert failed["error"] == "cell 2: ValueError: batch_size 0 is not allowed"
    assert failed["accuracy"] == [[1, 0.902]] and failed["peak_source"] == "sampled RSS of the process tree"
    assert failed["peak_bytes"] > 20e6
    stopped = lessons.measure_lesson(slow, "plain", None, 3, True)
    assert stopped["error"] == "timed out after 3 s (stopped in cell 1)" and stopped["wall_s"] < 30
    assert stopped["accuracy"] == [[0, 0.5]]


def test_a_lesson_over_the_memory_limit_says_the_out_of_memory_killer_stopped_it(tmp_path, monkeypatch):
    monkeypatch.setitem(lessons.LIMITS, "binder", {"cpus": 1.0, "memory_bytes": 400 * 2**20})
    parents, why = lessons.usable_parents("binder")
    if parents is None:
        pytest.skip(f"no cgroup can be made here: {why}")
    big = tmp_path / "big.ipynb"
    nbformat.write(notebook(new_code_cell("x = bytearray(1 << 30)")), big)
    result = lessons.measure_lesson(big, "binder", parents, 60, True)
    assert result["oom_kills"] >= 1 and "out-of-memory killer stopped" in result["error"]
    assert result["peak_bytes"] <= 400 * 2**20


def test_lesson_01_runs_binder_sized_where_the_machine_allows(tmp_path):
    parents, why = lessons.usable_parents("binder")
    mode = "binder" if parents else "plain"
    out, copy = tmp_path / "lessons.json", tmp_path / "RESULTS.md"
    shutil.copy(ROOT / "benchmarks" / "RESULTS.md", copy)
    r = run_script("--only", "01", "--fast", "--modes", mode, "--timeout", "120", "--json", out, "--results", copy)
    assert r.returncode == 0, r.stderr + r.stdout
    results = json.loads(out.read_text())
    assert results["complete"] is True and results["fast"] is True
    command = (f"python benchmarks/lessons.py --only 01 --fast --modes {mode} --timeout 120 --json {out} "
               f"--results {copy}")
    assert results["command"] == command
    assert results["machine"]["python"] == platform.python_version() and results["machine"]["cpu_count"] >= 1
    run = results["modes"][mode]
    (lesson,) = run["lessons"]
    assert lesson["lesson"] == "01_one_by_one_convolutions" and lesson["error"] is None, lesson
    assert 0 < lesson["wall_s"] < 120 and lesson["peak_bytes"] > 50e6 and lesson["cells"] > 10
    assert "01_one_by_one_convolutions" in r.stdout and "| lesson | mode | wall |" in r.stdout
    section = copy.read_text().split(lessons.START_MARKER)[1].split(lessons.END_MARKER)[0]
    assert f"| 01_one_by_one_convolutions | {mode} | " in section and command in section
    if parents:
        sees = run["library_sees"]
        assert run["limited"] is True and lesson["oom_kills"] == 0
        assert sees["cpu_quota"] == 1.0 and sees["memory_limit"] == 2 * GiB, sees  # the library sees the quota
        assert sees["cpu_limit"][0] == 1
        left = [p for folder in (parents[1].values() if parents[0] == "v1" else [parents[1]])
                for p in Path(folder).glob(f"nin-lessons-{os.getpid()}-*")]
        assert left == []  # every group made for the run is gone
        assert results["goal_check"]["lessons"][0]["ok"] is True


# ---------------------------------------------------------------------------------------------
# benchmarks/bench.py: the one test that runs it

def test_bench_pipeline_runs_in_ci_size(tmp_path, fmnist):
    out = tmp_path / "bench.json"
    r = run_script("--device", "cpu", "--steps", "2", "--warmup", "1", "--batch-size", "8",  # mode: pipeline
                   "--resize", "67", "--workers", "0", "--json", out, main=bench.main)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    names = [x["name"] for x in result["results"]]
    assert names == ["d2l-style", "fit", "nin_lib.d2l"] and all(x["images"] == 16 for x in result["results"])
    assert result["results"][1]["ratio"] > 0 and "fit / d2l-style = " in r.stdout
    book = result["results"][2]
    assert book["ratio"] > 0 and "nin_lib.d2l / d2l-style = " in r.stdout
    assert any(line.endswith("examples/sec on cpu") for line in book["lines"])  # the book's closing line
    assert result["machine"]["torch"] == torch.__version__
