"""Run-time choices every lesson and command shares: fast mode, the device and what it uses (bf16, channels_last),
CPU threads that follow the CPU quota, free memory, seeding, atomic file writes and a description of the machine.

Nothing here runs at import: the device is probed, threads are set and seeds are drawn only when asked.
"""
import contextlib
import math
import os
import platform
import random
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import checks

FAST_ENV = "NIN_FAST"


# ---------------------------------------------------------------------------------------------
# Fast mode

def fast_mode():
    """True when ``NIN_FAST`` is set to a true value: every lesson then runs in seconds on a CPU."""
    value = os.environ.get(FAST_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def fast(normal, quick):
    """Pick ``quick`` in fast mode and ``normal`` otherwise (the one place notebooks shrink work)."""
    return quick if fast_mode() else normal


# ---------------------------------------------------------------------------------------------
# CPU threads: as many as this process may really use

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cgroup_dirs(controller, root=None, proc=None):
    """The folders that may hold this process's limits for one controller ('cpu' or 'memory'), own group first.

    cgroup v2 keeps every controller in one tree (``0::/path``); v1 mounts one tree per controller
    (``4:cpu,cpuacct:/path`` under ``cpu,cpuacct`` or ``cpu``). A container usually sees its own group as
    the root of the tree; a process in a group of its own sees the group's path. Parents count too: the
    tightest limit on the way up is the one that holds.
    """
    root = Path(root or CGROUP_ROOT)
    text = _read(proc or PROC_CGROUP) or ""
    found = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, names, path = parts
        if names == "":  # v2
            bases = [root]
        elif controller in names.split(","):
            bases = [root / names, root / controller]
        else:
            continue
        for base in bases:
            rel = Path(path.lstrip("/"))
            for up in [rel, *rel.parents]:
                folder = base / up
                if folder.is_dir() and folder not in found:
                    found.append(folder)
    for folder in (root, root / controller, root / "cpu,cpuacct" if controller == "cpu" else root / controller):
        if folder.is_dir() and folder not in found:
            found.append(folder)
    return found


def cpu_quota(root=None, proc=None):
    """The cgroup CPU quota in CPUs (e.g. 1.0 on a Binder pod), or None where there is none.

    cgroup v2: ``cpu.max`` ("max 100000" or "100000 100000"); v1: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``.
    """
    quotas = []
    for folder in _cgroup_dirs("cpu", root, proc):
        v2 = _read(folder / "cpu.max")
        if v2:
            quota, _, period = v2.partition(" ")
            if quota != "max" and quota.isdigit() and period.isdigit() and int(period) > 0:
                quotas.append(int(quota) / int(period))
            continue
        quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota and period and quota.lstrip("-").isdigit() and period.isdigit() and int(quota) > 0 < int(period):
            quotas.append(int(quota) / int(period))
    return min(quotas) if quotas else None


def cpu_limit(root=None, proc=None):
    """How many CPU threads this process can really use, and why: ``(n, reason)``.

    The smallest of the CPUs it may run on (``os.sched_getaffinity``), the cgroup CPU quota rounded up
    and the host's cores; the reason names the one that limits, e.g. ``(1, 'CPU quota 1.0')``.
    """
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
    """Set torch's CPU threads to what this process can use (``cpu_limit``), once, before CPU work.

    An explicit ``threads`` wins; so does a learner's own choice: ``OMP_NUM_THREADS`` in the environment, or a
    ``torch.set_num_threads`` call after nin_lib first chose (nin_lib then leaves it alone). Returns the number
    of threads torch uses now.
    """
    if threads is not None:
        checks.whole_number("threads", threads, 1, 1024)
        torch.set_num_threads(threads)
        return threads
    chosen = _threads["set"]
    if chosen is not None and torch.get_num_threads() != chosen:
        return torch.get_num_threads()  # the learner changed it since
    if chosen is None and os.environ.get("OMP_NUM_THREADS"):
        _threads.update(set=torch.get_num_threads(), reason="OMP_NUM_THREADS")
        return torch.get_num_threads()
    n, reason = cpu_limit()
    if torch.get_num_threads() > n:
        torch.set_num_threads(n)
    _threads.update(set=torch.get_num_threads(), reason=reason if torch.get_num_threads() == n else None)
    return torch.get_num_threads()


@contextlib.contextmanager
def cpu_threads(n):
    """Use ``n`` torch CPU threads inside the block (None: follow the CPU quota), then put the number back."""
    before = torch.get_num_threads()
    follow_cpu_quota(n)
    try:
        yield torch.get_num_threads()
    finally:
        if n is not None:
            torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# The device

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(name="auto", verbose=False):
    """Return the torch.device named by ``name``: 'auto' picks CUDA, then Apple MPS, then CPU.

    A requested device that is not there is an error, never a silent fallback. On the CPU the number of
    threads follows the CPU quota (``follow_cpu_quota``); ``verbose`` prints the device line.
    """
    if isinstance(name, torch.device):
        name = str(name)
    kind = name.split(":")[0] if isinstance(name, str) else name
    checks.choice("device", kind if kind in DEVICES else name, DEVICES)
    if kind == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif _mps_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    elif kind == "cuda" and not torch.cuda.is_available():
        raise checks.refuse(f"device {name!r} was requested but this machine has no CUDA GPU; use 'cpu' or 'auto'")
    elif kind == "mps" and not _mps_available():
        raise checks.refuse(f"device {name!r} was requested but Apple MPS is not available here; use 'cpu' or 'auto'")
    else:
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
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def sync(device):
    """Wait until the device has done its queued work (timings need it)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# ---------------------------------------------------------------------------------------------
# Memory

def _cgroup_memory(root=None, proc=None):
    """(limit, usage) in bytes of the tightest cgroup memory limit above this process, or None."""
    best = None
    for folder in _cgroup_dirs("memory", root, proc):
        for limit, used in (("memory.max", "memory.current"), ("memory.limit_in_bytes", "memory.usage_in_bytes")):
            cap, now = _read(folder / limit), _read(folder / used)
            if cap and now and cap.isdigit() and now.isdigit() and int(cap) < 2**60:
                if best is None or int(cap) - int(now) < best[0] - best[1]:
                    best = (int(cap), int(now))
                break
    return best


def memory_limit():
    """The cgroup memory limit in bytes (Binder: 2 GiB), or None where there is none."""
    found = _cgroup_memory()
    return found[0] if found else None


def available_memory(device):
    """Bytes free for training on ``device`` now (CUDA: free GPU memory; CPU: the system's available memory,
    within a container's limit), or None where it cannot be told."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return torch.cuda.mem_get_info(device)[0]
        if device.type == "mps":
            return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        if device.type == "cpu":
            return _cpu_available()
    except (OSError, ValueError, RuntimeError, AttributeError):
        return None
    return None


def _cpu_available():
    free = None
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            free = int(line.split()[1]) * 1024
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            free = None
    group = _cgroup_memory()
    if group is not None:
        free = group[0] - group[1] if free is None else min(free, group[0] - group[1])
    return free


# ---------------------------------------------------------------------------------------------
# Seeding

def seed_everything(seed):
    """Seed Python, torch (CPU and CUDA) and, if present, NumPy; called by setup cells, never at import."""
    checks.whole_number("seed", seed, 0)
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional for the library itself
        return
    np.random.seed(seed % 2**32)


# ---------------------------------------------------------------------------------------------
# Files that are whole or absent

TMP_SUFFIX = ".tmp"  # what a file is called while it is being written

@contextlib.contextmanager
def atomic_path(path):
    """Write to a temporary file beside ``path`` inside the block; it takes ``path``'s name only if the block
    ends without an error, and is removed otherwise: a full disk or a bad download never leaves half a file.

    >>> with atomic_path("history.json") as tmp:
    ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


# ---------------------------------------------------------------------------------------------
# Where numbers come from

def _cpu_model():
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


_clock = {"start": None}


def process_seconds():
    """Seconds since this process started (Linux: from /proc, so the imports count too; elsewhere: since the
    first call). The command line records it as the wall time of the whole command."""
    import time

    stat, uptime = _read("/proc/self/stat"), _read("/proc/uptime")
    if stat and uptime:
        with contextlib.suppress(ValueError, IndexError, OSError):
            started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            return float(uptime.split()[0]) - started
    if _clock["start"] is None:
        _clock["start"] = time.perf_counter()
    return time.perf_counter() - _clock["start"]


def machine(device=None):
    """Where a measurement ran: device, CPU, threads, quota, memory limit, versions, date and load (a dict)."""
    import torchvision

    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "platform": platform.platform(terse=True), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "cpu_limit": cpu_limit()[0],
            "cpu_quota": cpu_quota(), "memory_limit": memory_limit(), "torch_threads": torch.get_num_threads()}
    if device is not None:
        info["device"] = describe_device(device)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info
