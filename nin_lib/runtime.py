"""Run-time choices all lessons share: fast mode, device, CPU threads, memory, seeding, atomic writes, the machine."""
import contextlib
import math
import os
import platform
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import checks


def fast_mode():
    """True when ``NIN_FAST`` is set to a true value: every lesson then runs in seconds on a CPU."""
    return os.environ.get("NIN_FAST", "").strip().lower() not in ("", "0", "false", "no", "off")


def fast(normal, quick):
    """Pick ``quick`` in fast mode and ``normal`` otherwise (the one place notebooks shrink work)."""
    return quick if fast_mode() else normal


# CPU threads: as many as this process may really use
CGROUP_ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cgroup_numbers(controller, files, root=None, proc=None):
    """Whole-number pairs in ``files`` (per cgroup version: one file of two, or two of one) of this process's cgroup
    folders for ``controller``, own group then parents (v2: one tree, ``0::/path``; v1: ``4:cpu,cpuacct:/path``)."""
    root, found = Path(root or CGROUP_ROOT), []
    for line in (_read(proc or PROC_CGROUP) or "").splitlines():
        _, names, path = line.split(":", 2)
        if names == "":  # v2
            bases = [root]
        elif controller in names.split(","):
            bases = [root / names, root / controller]
        else:
            continue
        rel = Path(path.lstrip("/"))
        found += [base / up for base in bases for up in [rel, *rel.parents]]
    found += [root, root / controller] + ([root / "cpu,cpuacct"] if controller == "cpu" else [])
    pairs = []
    for folder in dict.fromkeys(folder for folder in found if folder.is_dir()):
        for names in files:
            numbers = " ".join(_read(folder / name) or "" for name in names).split()
            if len(numbers) == 2 and all(n.isdigit() for n in numbers):  # not "max" (v2) or -1 (v1): no limit
                pairs.append((int(numbers[0]), int(numbers[1])))
    return pairs


def cpu_quota(root=None, proc=None):
    """The cgroup CPU quota in CPUs (e.g. 1.0 on a Binder pod; v2's ``cpu.max``, v1's ``cpu.cfs_*``), or None."""
    pairs = _cgroup_numbers("cpu", [("cpu.max",), ("cpu.cfs_quota_us", "cpu.cfs_period_us")], root, proc)
    return min((quota / period for quota, period in pairs if quota > 0 < period), default=None)


def cpu_limit(root=None, proc=None):
    """(threads this process can use, why), e.g. ``(1, 'CPU quota 1')``: the fewest of cores, CPUs allowed, quota."""
    cores = os.cpu_count() or 1
    options = [(cores, f"{cores} core{'s' if cores != 1 else ''}")]
    if hasattr(os, "sched_getaffinity"):
        allowed = len(os.sched_getaffinity(0))
        options.append((allowed, f"{allowed} CPU{'s' if allowed != 1 else ''} allowed"))
    quota = cpu_quota(root, proc)
    if quota is not None:
        options.append((max(1, math.ceil(quota - 1e-9)), f"CPU quota {quota:g}"))
    return min(options, key=lambda option: option[0])


_threads = {"set": None, "reason": None}


def follow_cpu_quota(threads=None):
    """Set torch's CPU threads to at most ``cpu_limit()`` before CPU work; returns the number torch uses now. An
    explicit ``threads`` wins; so does a learner's own (``OMP_NUM_THREADS``, or ``torch.set_num_threads`` since)."""
    if threads is not None:
        torch.set_num_threads(checks.whole_number("threads", threads, 1, 1024))
    elif _threads["set"] is None and os.environ.get("OMP_NUM_THREADS"):
        _threads.update(set=torch.get_num_threads(), reason="OMP_NUM_THREADS")
    elif _threads["set"] in (None, torch.get_num_threads()):  # not changed by the learner since nin_lib chose
        n, reason = cpu_limit()
        if torch.get_num_threads() > n:
            torch.set_num_threads(n)
        _threads.update(set=torch.get_num_threads(), reason=reason if torch.get_num_threads() == n else None)
    return torch.get_num_threads()


# The device
DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name="auto", verbose=False):
    """The torch.device named by ``name`` ('auto': CUDA, then Apple MPS, then CPU, whose threads then follow the CPU
    quota); a requested device that is not there is refused, never a silent fallback."""
    name = str(name) if isinstance(name, torch.device) else name
    kind = name.split(":")[0] if isinstance(name, str) else name
    checks.choice("device", kind if kind in DEVICES else name, DEVICES)
    if kind == "cuda" and not torch.cuda.is_available():
        raise checks.refuse(f"device {name!r} was requested but this machine has no CUDA GPU; use 'cpu' or 'auto'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise checks.refuse(f"device {name!r} was requested but Apple MPS is not available here; use 'cpu' or 'auto'")
    if kind == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cpu":
        follow_cpu_quota()
    if verbose:
        print(f"device: {describe_device(device)}")
    return device


def describe_device(device):
    """A short name for a device, e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (1 thread: CPU quota 1.0)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        why = _threads["reason"] if _threads["set"] == n else None
        return f"cpu ({n} thread{'s' if n != 1 else ''}{': ' + why if why else ''})"
    return device.type


def uses_amp(amp, device):
    """bf16 autocast: 'auto' means on CUDA only (the tensor cores); True or False force it."""
    return torch.device(device).type == "cuda" if amp == "auto" else bool(amp)


def uses_channels_last(channels_last, device):
    """channels_last memory: 'auto' means on CUDA and on the CPU, where these nets' convolutions run faster in it."""
    return torch.device(device).type in ("cuda", "cpu") if channels_last == "auto" else bool(channels_last)


def autocast(device, enabled):
    """bf16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def sync(device):
    """Wait until the device has done its queued work (timings need it)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# Memory
def _cgroup_memory(root=None, proc=None):
    """(limit, usage) in bytes of the tightest cgroup memory limit above this process, or None."""
    files = [("memory.max", "memory.current"), ("memory.limit_in_bytes", "memory.usage_in_bytes")]
    found = [pair for pair in _cgroup_numbers("memory", files, root, proc) if pair[0] < 2**60]  # v1's no limit: ~2**63
    return min(found, key=lambda limit: limit[0] - limit[1], default=None)


def memory_limit():
    """The cgroup memory limit in bytes (Binder: 2 GiB), or None where there is none."""
    found = _cgroup_memory()
    return found[0] if found else None


def available_memory(device):
    """Bytes free on ``device`` now (CPU: available memory within the cgroup limit), or None where it cannot be told."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return torch.cuda.mem_get_info(device)[0]
        if device.type == "mps":
            return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
    except (RuntimeError, AttributeError):
        return None
    if device.type != "cpu":
        return None
    meminfo = [line.split() for line in (_read("/proc/meminfo") or "").splitlines()]
    free = [int(words[1]) * 1024 for words in meminfo if words and words[0] == "MemAvailable:"]
    group = _cgroup_memory()
    free += [group[0] - group[1]] if group else []  # what the system leaves, and what the cgroup's limit leaves
    return min(free, default=None)


# Seeding and files that are whole or absent
def seed_everything(seed):
    """Seed Python, torch (CPU and CUDA) and NumPy; called by setup cells, never at import."""
    import numpy as np
    seed = checks.whole_number("seed", seed, 0)
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


@contextlib.contextmanager
def atomic_path(path):
    """``with atomic_path(path) as tmp``: write ``tmp``; it becomes ``path`` only if the block ends without an error
    (a full disk or a broken download never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# Where numbers come from
_clock = {}


def process_seconds():
    """Seconds since this process started (Linux: from /proc, imports included; elsewhere: since the first call)."""
    stat, uptime = _read("/proc/self/stat"), _read("/proc/uptime")
    with contextlib.suppress(ValueError, IndexError, AttributeError):  # not Linux, or an unusual /proc
        started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        return float(uptime.split()[0]) - started
    return time.perf_counter() - _clock.setdefault("start", time.perf_counter())


def machine(device=None):
    """Where a measurement ran: device, CPU, threads, quota, memory limit, versions, date and load (a dict)."""
    import torchvision
    cpu = next((line.split(":", 1)[1].strip() for line in (_read("/proc/cpuinfo") or "").splitlines()
                if line.startswith("model name")), None) or platform.processor() or platform.machine()
    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(terse=True), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cpu": cpu, "cpu_count": os.cpu_count(), "cpu_limit": cpu_limit()[0],
            "cpu_quota": cpu_quota(), "memory_limit": memory_limit(), "torch_threads": torch.get_num_threads()}
    if device is not None:
        info["device"] = describe_device(device)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info
