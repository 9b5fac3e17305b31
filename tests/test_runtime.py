"""runtime: threads that follow the CPU quota (cgroup v1 and v2, read from fake cgroup files), memory limits,
the device line, atomic writes and the machine description."""
import os

import pytest
import torch

from nin_lib import checks, runtime


def cgroup_v2(tmp_path, cpu_max=None, memory_max=None, memory_current=None, path="/"):
    """A fake cgroup v2 tree whose group ``path`` holds the given files, and the /proc/self/cgroup line for it."""
    root = tmp_path / "cgroup"
    group = root / path.strip("/")
    group.mkdir(parents=True, exist_ok=True)
    for name, value in (("cpu.max", cpu_max), ("memory.max", memory_max), ("memory.current", memory_current)):
        if value is not None:
            (group / name).write_text(f"{value}\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text(f"0::{path}\n")
    return str(root), str(proc)


def cgroup_v1(tmp_path, quota=None, period=100000, limit=None, usage=None, path="/"):
    """A fake cgroup v1 tree (cpu,cpuacct and memory hierarchies) and its /proc/self/cgroup lines."""
    root = tmp_path / "cgroup"
    cpu, memory = root / "cpu,cpuacct" / path.strip("/"), root / "memory" / path.strip("/")
    cpu.mkdir(parents=True, exist_ok=True)
    memory.mkdir(parents=True, exist_ok=True)
    if quota is not None:
        (cpu / "cpu.cfs_quota_us").write_text(f"{quota}\n")
        (cpu / "cpu.cfs_period_us").write_text(f"{period}\n")
    if limit is not None:
        (memory / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (memory / "memory.usage_in_bytes").write_text(f"{usage}\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text(f"12:memory:{path}\n4:cpu,cpuacct:{path}\n1:name=systemd:/init.scope\n")
    return str(root), str(proc)


@pytest.mark.parametrize("make, expected", [
    (lambda t: cgroup_v2(t, cpu_max="100000 100000"), 1.0),
    (lambda t: cgroup_v2(t, cpu_max="150000 100000", path="/kubepods/pod1"), 1.5),
    (lambda t: cgroup_v2(t, cpu_max="max 100000"), None),
    (lambda t: cgroup_v1(t, quota=100000), 1.0),
    (lambda t: cgroup_v1(t, quota=250000, path="/binder"), 2.5),
    (lambda t: cgroup_v1(t, quota=-1), None),
    (lambda t: (str(t / "nothing"), str(t / "no-proc")), None),
])
def test_cpu_quota_reads_v1_and_v2(tmp_path, make, expected):
    root, proc = make(tmp_path)
    assert runtime.cpu_quota(root, proc) == expected


def test_cpu_limit_is_the_smallest_of_affinity_quota_and_cores(tmp_path, monkeypatch):
    root, proc = cgroup_v1(tmp_path, quota=100000)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert runtime.cpu_limit(root, proc) == (1, "CPU quota 1")
    root, proc = cgroup_v2(tmp_path / "b", cpu_max="1500000 100000")  # 15 CPUs of quota, 8 allowed
    assert runtime.cpu_limit(root, proc) == (8, "8 CPUs allowed")
    root, proc = cgroup_v2(tmp_path / "c", cpu_max="150000 100000")  # 1.5 CPUs: rounded up
    assert runtime.cpu_limit(root, proc) == (2, "CPU quota 1.5")


def test_a_parent_groups_quota_holds_too(tmp_path):
    root, proc = cgroup_v2(tmp_path, path="/pod/container")
    (tmp_path / "cgroup" / "pod" / "cpu.max").write_text("100000 100000\n")
    assert runtime.cpu_quota(root, proc) == 1.0


@pytest.fixture
def fresh_threads(monkeypatch):
    """torch's thread count and nin_lib's memory of it, put back after the test."""
    before = torch.get_num_threads()
    monkeypatch.setattr(runtime, "_threads", {"set": None, "reason": None})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(before)


def test_threads_follow_the_quota_and_the_device_line_says_why(fresh_threads, monkeypatch):
    torch.set_num_threads(4)
    monkeypatch.setattr(runtime, "cpu_limit", lambda: (1, "CPU quota 1"))
    assert runtime.follow_cpu_quota() == 1 and torch.get_num_threads() == 1
    assert runtime.describe_device("cpu") == "cpu (1 thread: CPU quota 1)"
    assert str(runtime.pick_device("cpu")) == "cpu"


def test_an_explicit_number_of_threads_wins(fresh_threads, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_limit", lambda: (1, "CPU quota 1"))
    assert runtime.follow_cpu_quota(3) == 3 and torch.get_num_threads() == 3
    with pytest.raises(checks.Refusal, match="threads 0 is not allowed"):
        runtime.follow_cpu_quota(0)


def test_the_learners_own_choice_wins(fresh_threads, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_limit", lambda: (2, "2 cores"))
    torch.set_num_threads(8)
    assert runtime.follow_cpu_quota() == 2  # nin_lib chooses once
    torch.set_num_threads(1)  # then the learner sets it
    assert runtime.follow_cpu_quota() == 1 and torch.get_num_threads() == 1
    assert runtime.describe_device("cpu") == "cpu (1 thread)"


def test_omp_num_threads_is_a_choice_too(fresh_threads, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_limit", lambda: (1, "CPU quota 1"))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)
    assert runtime.follow_cpu_quota() == 3


def test_fewer_threads_than_the_limit_stay(fresh_threads, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_limit", lambda: (4, "4 cores"))
    torch.set_num_threads(2)
    assert runtime.follow_cpu_quota() == 2


@pytest.mark.parametrize("make", [
    lambda t: cgroup_v2(t, memory_max=2 * 2**30, memory_current=2**29),
    lambda t: cgroup_v1(t, limit=2 * 2**30, usage=2**29, path="/binder"),
])
def test_memory_limit_and_free_memory_within_it(tmp_path, monkeypatch, make):
    root, proc = make(tmp_path)
    monkeypatch.setattr(runtime, "CGROUP_ROOT", root)
    monkeypatch.setattr(runtime, "PROC_CGROUP", proc)
    assert runtime.memory_limit() == 2 * 2**30
    assert runtime.available_memory("cpu") <= 2 * 2**30 - 2**29


def test_no_memory_limit_means_none(tmp_path, monkeypatch):
    root, proc = cgroup_v2(tmp_path, memory_max="max", memory_current=123)
    assert runtime._cgroup_memory(root, proc) is None


def test_atomic_path_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "a.json"
    with runtime.atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    with pytest.raises(RuntimeError):
        with runtime.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the disk is full")
    assert target.read_text() == "whole" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_machine_names_what_a_measurement_depends_on():
    m = runtime.machine("cpu")
    for key in ("date", "python", "torch", "torchvision", "cpu", "cpu_count", "cpu_limit", "torch_threads",
                "device"):
        assert key in m, key
    assert m["device"].startswith("cpu (") and m["cpu_limit"] >= 1
    assert runtime.process_seconds() > 0


def test_device_policy():
    assert runtime.uses_amp("auto", "cuda") and not runtime.uses_amp("auto", "cpu") and runtime.uses_amp(True, "cpu")
    assert runtime.uses_channels_last("auto", "cpu") and not runtime.uses_channels_last(False, "cuda")
    with pytest.raises(checks.Refusal, match="device 'tpu' is not known"):
        runtime.pick_device("tpu")
