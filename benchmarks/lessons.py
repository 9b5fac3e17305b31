"""Every lesson top to bottom as a learner runs it: on this machine as it is, and in a Binder-sized cgroup.

Each lesson (``notebooks/*.ipynb``) runs in full mode (``NIN_FAST`` unset) in a fresh kernel with nbclient, in
a runner process of its own that is moved into a fresh cgroup before it starts the kernel, so the kernel and
everything it starts count against the group:

- ``plain``: a group without limits (only to measure peak memory the same way);
- ``binder``: a group limited like a mybinder.org pod, 1 CPU of quota and 2 GiB of memory, no swap.

Per lesson it records the wall time of the top-to-bottom run, the group's peak memory (cgroup v1
``memory.max_usage_in_bytes``, v2 ``memory.peak``; without cgroups, the sampled RSS of the runner's process
tree), the CPU time, the last ``test acc`` figure each code cell prints, the slowest cell and the error of a
run that fails. A tiny ``python -c`` in a group made the same way records what ``nin_lib.runtime.cpu_limit()``
and ``memory_limit()`` report there, so the results show whether the library sees the quota.

    python benchmarks/lessons.py                               # every lesson, plain and binder
    python benchmarks/lessons.py --only 01 05 --modes binder   # two lessons, Binder-sized only
    python benchmarks/lessons.py --write-results               # also write the table into benchmarks/RESULTS.md
    python benchmarks/lessons.py --modes binder --command python -m nin_lib train --preset quick
                                                               # any command, Binder-sized: its time and memory

Goals under the Binder limits: every lesson within 120 s and 1.2 GiB, all lessons together within 8 minutes.
Where no cgroup can be made (not root, no cgroup filesystem) it says why in one line and runs without limits.
The JSON file (default benchmarks/lessons.json) is rewritten after every lesson (``complete`` stays false until
the end). Bad arguments: exit status 2, one sentence.
"""
import argparse
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SCRIPT = Path(__file__).resolve()
GiB = 2**30
MODES = ("plain", "binder")
LIMITS = {"plain": None, "binder": {"cpus": 1.0, "memory_bytes": 2 * GiB}}
GOALS = {"lesson_wall_s": 120.0, "lesson_peak_bytes": int(1.2 * GiB), "total_wall_s": 480.0}
START_MARKER = "<!-- lessons:start (written by benchmarks/lessons.py) -->"
END_MARKER = "<!-- lessons:end -->"
CGROUP_MOUNTS = "/proc/self/mountinfo"
PROC_CGROUP = "/proc/self/cgroup"
CPU_PERIOD_US = 100_000
GRACE_S = 90  # after the lesson's timeout: time for the runner to stop the kernel before it is killed
PROBE = ("import json; from nin_lib import runtime; n, why = runtime.cpu_limit(); "
         "print(json.dumps({'cpu_limit': [n, why], 'cpu_quota': runtime.cpu_quota(), "
         "'memory_limit': runtime.memory_limit()}))")


# ---------------------------------------------------------------------------------------------
# What the executed notebook says

ACCURACY = re.compile(r"test acc(?:uracy)?\s*[:=]?\s*([01]\.\d+)", re.IGNORECASE)


def cell_text(cell):
    """The text a code cell printed or displayed (streams and text/plain results), joined."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(_joined(output.get("text", "")))
        elif output.get("output_type") in ("execute_result", "display_data"):
            parts.append(_joined(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _joined(text):
    return "".join(text) if isinstance(text, list) else str(text)


def last_accuracy(text):
    """The last ``test acc 0.xxx`` (or ``test accuracy: 0.xxx``) figure in ``text``, or None."""
    found = ACCURACY.findall(text)
    return float(found[-1]) if found else None


def accuracies(nb):
    """``[(cell index, test accuracy), ...]`` for the code cells that print one (cell index counts all cells from 0)."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") == "code":
            acc = last_accuracy(cell_text(cell))
            if acc is not None:
                found.append((index, acc))
    return found


def first_error(nb):
    """``(cell index, 'Name: message')`` of the first code cell whose output is an error, or None."""
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index, one_line(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}")
    return None


def one_line(text, width=200):
    """The first non-empty line of ``text``, cut to ``width`` characters."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= width else line[:width - 1] + "…"


def cell_seconds(cell):
    """Seconds a code cell ran (nbclient's execution timestamps), or None."""
    times = cell.get("metadata", {}).get("execution", {})
    start, end = times.get("iopub.execute_input"), times.get("shell.execute_reply")
    if not (start and end):
        return None
    try:
        return (_timestamp(end) - _timestamp(start)).total_seconds()
    except ValueError:
        return None


def _timestamp(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def slowest_cell(nb):
    """``(cell index, seconds)`` of the code cell that ran longest, or None."""
    timed = [(index, cell_seconds(cell)) for index, cell in enumerate(nb["cells"]) if cell.get("cell_type") == "code"]
    timed = [(index, round(s, 1)) for index, s in timed if s is not None]
    return max(timed, key=lambda pair: pair[1]) if timed else None


# ---------------------------------------------------------------------------------------------
# One lesson in this process (the runner: ``--one NOTEBOOK --row PATH --timeout S``); imports nbclient only

class _Deadline:
    """Interrupts the kernel when the lesson's time is up (every 5 s), and kills it 30 s later."""

    def __init__(self, client, seconds):
        self.client, self.seconds, self.expired = client, seconds, False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _kernel_group(self):
        provisioner = getattr(getattr(self.client, "km", None), "provisioner", None)
        return getattr(provisioner, "pgid", None)

    def _watch(self):
        if self.done.wait(self.seconds):
            return
        self.expired = True
        for attempt in range(7):
            group = self._kernel_group()
            if group:
                try:
                    os.killpg(group, signal.SIGKILL if attempt == 6 else signal.SIGINT)
                except ProcessLookupError:
                    return
            if self.done.wait(5):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()


def run_lesson(notebook, timeout):
    """Run one notebook top to bottom in a fresh kernel; the row: wall time, accuracies, slowest cell, error."""
    import nbformat
    from nbclient import NotebookClient

    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=None,
                            resources={"metadata": {"path": str(notebook.parent)}})
    error, start = None, time.perf_counter()
    with _Deadline(client, timeout) as deadline:
        try:
            client.execute()
        except Exception as exc:  # a failing lesson is a row that says so
            error = exc
    wall = time.perf_counter() - start
    failed = first_error(nb)
    if deadline.expired:
        where = f" (stopped in cell {failed[0]})" if failed else ""
        summary = f"timed out after {timeout} s{where}"
    elif failed:
        summary = f"cell {failed[0]}: {failed[1]}"
    elif error is not None:
        summary = one_line(f"{type(error).__name__}: {error}")
    else:
        summary = None
    return {"wall_s": round(wall, 2), "cells": len(nb["cells"]), "accuracy": accuracies(nb),
            "slowest_cell": slowest_cell(nb), "error": summary}


def one_main(argv):
    """The runner's entry point: run one lesson and write its row as JSON."""
    import argparse
    p = argparse.ArgumentParser(prog="benchmarks/lessons.py --one")
    p.add_argument("notebook")
    p.add_argument("--row", required=True)
    p.add_argument("--timeout", type=int, required=True)
    args = p.parse_args(argv)
    Path(args.row).write_text(json.dumps(run_lesson(args.notebook, args.timeout)))
    return 0


# ---------------------------------------------------------------------------------------------
# cgroups: where they can be made, one per lesson, removed afterwards

class CgroupUnavailable(Exception):
    """No cgroup can be made here; the message says why, in one line."""


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cgroup_mounts(mountinfo=CGROUP_MOUNTS):
    """The cgroup filesystems: ``[(version, controllers, mount root, mount point)]`` (v2 lists no controllers)."""
    found = []
    for line in (_read(mountinfo) or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields, kind = left.split(), right.split()
        if not sep or len(fields) < 5 or len(kind) < 3:
            continue
        if kind[0] == "cgroup2":
            found.append(("v2", frozenset(), fields[3], fields[4]))
        elif kind[0] == "cgroup":
            found.append(("v1", frozenset(kind[2].split(",")), fields[3], fields[4]))
    return found


def own_cgroups(proc=PROC_CGROUP):
    """This process's cgroup paths: ``{controller: path}`` for v1 and ``{'': path}`` for v2."""
    paths = {}
    for line in (_read(proc) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for name in parts[1].split(",") if parts[1] else [""]:
                paths.setdefault(name, parts[2])
    return paths


def _own_folder(point, mount_root, path):
    """The folder of this process's own group inside a mount, or the mount point where it cannot be seen."""
    if path is None:
        return Path(point)
    if mount_root != "/":
        if not path.startswith(mount_root):
            return Path(point)
        path = path[len(mount_root):]
    folder = Path(point) / path.lstrip("/")
    return folder if folder.is_dir() else Path(point)


def find_parents(controllers, mountinfo=CGROUP_MOUNTS, proc=PROC_CGROUP):
    """Where groups with ``controllers`` ('cpu', 'memory') can be made: ``('v1', {controller: folder})`` or
    ``('v2', folder)``, each under this process's own group; raises CgroupUnavailable with the reason."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise CgroupUnavailable(f"not running as root (uid {os.geteuid()}), so no cgroup can be made")
    mounts, own = cgroup_mounts(mountinfo), own_cgroups(proc)
    if not mounts:
        raise CgroupUnavailable("no cgroup filesystem is mounted here")
    v1 = {}
    for controller in controllers:
        for version, names, mount_root, point in mounts:
            if version == "v1" and controller in names:
                folder = _own_folder(point, mount_root, own.get(controller))
                if os.access(folder, os.W_OK):
                    v1[controller] = folder
                    break
    if len(v1) == len(controllers):
        return "v1", v1
    for version, _, mount_root, point in mounts:
        if version == "v2":
            own_folder = _own_folder(point, mount_root, own.get(""))
            for folder in dict.fromkeys([own_folder, Path(point)]):
                if _v2_delegates(folder, controllers):
                    return "v2", folder
    raise CgroupUnavailable(f"no writable cgroup hierarchy with the {' and '.join(controllers)} "
                            f"controller{'s' if len(controllers) > 1 else ''} is mounted here")


def _v2_delegates(folder, controllers):
    """True when child groups of a v2 ``folder`` get ``controllers`` (enabling them there if needed)."""
    available = set((_read(folder / "cgroup.controllers") or "").split())
    if not set(controllers) <= available or not os.access(folder, os.W_OK):
        return False
    enabled = set((_read(folder / "cgroup.subtree_control") or "").split())
    missing = [c for c in controllers if c not in enabled]
    if missing:
        try:
            (folder / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        except OSError:  # e.g. a group that holds processes itself (v2's no-internal-process rule)
            return False
    return True


_count = {"groups": 0}


def _write(folder, name, value):
    (Path(folder) / name).write_text(f"{value}\n")


def limit_files(version, limits):
    """The files and values that put ``limits`` ({'cpus', 'memory_bytes'} or None) on a group, in order:
    ``[(controller, file, value)]``; v1 also limits memory+swap and v2 allows no swap, like a Binder pod."""
    if not limits:
        return []
    quota, memory = int(round(limits["cpus"] * CPU_PERIOD_US)), int(limits["memory_bytes"])
    if version == "v1":
        return [("cpu", "cpu.cfs_period_us", CPU_PERIOD_US), ("cpu", "cpu.cfs_quota_us", quota),
                ("memory", "memory.limit_in_bytes", memory), ("memory", "memory.memsw.limit_in_bytes", memory)]
    return [("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}"), ("memory", "memory.max", memory),
            ("memory", "memory.swap.max", 0)]


class Cgroup:
    """One cgroup made for one run (one folder per v1 controller, one folder for v2), removed by ``remove``."""

    def __init__(self, version, folders):
        self.version, self.folders = version, folders  # folders: {controller: Path}

    @classmethod
    def make(cls, parents, limits):
        """A fresh group under ``parents`` (``find_parents``), with ``limits`` or none."""
        version, where = parents
        _count["groups"] += 1
        name = f"nin-lessons-{os.getpid()}-{_count['groups']}"
        folders = ({c: Path(p) / name for c, p in where.items()} if version == "v1"
                   else {c: Path(where) / name for c in ("cpu", "memory")})
        group = cls(version, folders)
        try:
            for folder in dict.fromkeys(folders.values()):
                folder.mkdir()
            for controller, name, value in limit_files(version, limits):
                optional = name.startswith(("memory.memsw", "memory.swap"))  # absent where swap is not accounted
                if not optional or (folders[controller] / name).exists():
                    _write(folders[controller], name, value)
        except OSError:
            group.remove()
            raise
        return group

    def command_inside(self, command):
        """``command`` started by a shell that first moves itself into the group, so all it starts is inside."""
        joins = [f"echo $$ > {shlex.quote(str(folder / 'cgroup.procs'))}"
                 for folder in dict.fromkeys(self.folders.values())]
        return ["sh", "-c", "set -e; " + "; ".join(joins) + '; exec "$@"', "sh", *command]

    def pids(self):
        found = set()
        for folder in dict.fromkeys(self.folders.values()):
            found.update(int(p) for p in (_read(folder / "cgroup.procs") or "").split())
        return found

    def current_bytes(self):
        folder = self.folders["memory"]
        value = _read(folder / ("memory.usage_in_bytes" if self.version == "v1" else "memory.current"))
        return int(value) if value and value.isdigit() else None

    def peak_bytes(self):
        """The group's peak memory and where it comes from, or (None, None) where the kernel keeps no peak."""
        name = "memory.max_usage_in_bytes" if self.version == "v1" else "memory.peak"
        value = _read(self.folders["memory"] / name)
        return (int(value), f"cgroup {self.version} {name}") if value and value.isdigit() else (None, None)

    def oom_kills(self):
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        for line in (_read(self.folders["memory"] / name) or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.isdigit():
                return int(value)
        return None

    def remove(self):
        """Kill what is left in the group (processes this script started) and remove its folders."""
        _kill(self.pids())
        for _ in range(50):
            if not self.pids():
                break
            time.sleep(0.1)
        for folder in dict.fromkeys(self.folders.values()):
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------------------------------------
# Peak memory without cgroups: the RSS of the runner's process tree, sampled

def process_tree(pid):
    """``pid`` and its descendants (from /proc)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        text = _read(stat)
        if text:
            fields = text.rsplit(")", 1)[-1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def rss_bytes(pid):
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakSampler:
    """Samples ``read()`` (bytes now) every ``every`` seconds in a thread and keeps the largest value."""

    def __init__(self, read, every=0.25):
        self.read, self.every, self.peak = read, every, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            self.peak = max(self.peak, self.read() or 0)
            if self.stop.wait(self.every):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


# ---------------------------------------------------------------------------------------------
# One lesson in its own process and group, measured from outside

def lesson_env(fast):
    """The kernel's environment: this checkout's nin_lib first, full mode (or fast mode for tests)."""
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in paths:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
    env.pop("NIN_FAST", None)
    if fast:
        env["NIN_FAST"] = "1"
    return env


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_in_group(command, parents, limits, env, timeout, log):
    """Run ``command`` in a fresh group (or without one where ``parents`` is None), up to ``timeout`` seconds.

    Returns (exit status or None when it was killed, wall s, CPU s, peak bytes, peak source, OOM kills).
    """
    group = Cgroup.make(parents, limits) if parents else None
    cpu, start = _cpu_seconds(), time.perf_counter()
    try:
        proc = subprocess.Popen(group.command_inside(command) if group else command, cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        seen = set()

        def tree_rss():
            tree = process_tree(proc.pid)
            seen.update(tree)
            return sum(rss_bytes(p) for p in tree)

        with PeakSampler(group.current_bytes if group else tree_rss) as sampler:
            try:
                status = proc.wait(timeout)
            except BaseException as stop:  # the time is up, or this script was interrupted: stop what it started
                _kill((group.pids() if group else seen) | {proc.pid})
                proc.wait()
                if not isinstance(stop, subprocess.TimeoutExpired):
                    raise
                status = None
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        peak, source = group.peak_bytes() if group else (None, None)
        if peak is None:
            peak = sampler.peak or None
            source = ("sampled cgroup memory" if group else "sampled RSS of the process tree") if peak else None
        return status, wall, cpu, peak, source, group.oom_kills() if group else None
    finally:
        if group:
            group.remove()


def measure_lesson(notebook, mode, parents, timeout, fast):
    """The row of one lesson in one mode: what the runner reports plus what the group measured."""
    limits = LIMITS[mode] if parents else None
    with tempfile.TemporaryDirectory(prefix="nin-lessons-") as tmp:
        row_file, log_file = Path(tmp) / "row.json", Path(tmp) / "runner.log"
        command = [sys.executable, str(SCRIPT), "--one", str(notebook), "--row", str(row_file),
                   "--timeout", str(timeout)]
        with open(log_file, "w") as log:
            status, wall, cpu, peak, source, ooms = run_in_group(command, parents, limits, lesson_env(fast),
                                                                 timeout + GRACE_S, log)
        reported = json.loads(row_file.read_text()) if row_file.exists() else None
        printed = [line for line in (_read(log_file) or "").splitlines() if line.strip()]
        last = one_line(printed[-1]) if printed else ""
    row = {"lesson": Path(notebook).stem, "mode": mode, "limited": limits is not None, "wall_s": round(wall, 2),
           "cpu_s": round(cpu, 2), "peak_bytes": peak, "peak_source": source, "oom_kills": ooms,
           "cells": None, "accuracy": [], "slowest_cell": None, "error": None}
    if reported:
        row.update(reported)
    elif status is None:
        row["error"] = f"no result after {timeout + GRACE_S} s; the run was killed"
    else:
        ended = f"the runner ended with status {status} without a result"
        row["error"] = one_line(f"{ended}: {last}" if last else ended)
    if ooms and row["error"]:
        row["error"] += f" (the out-of-memory killer stopped {ooms} process{'es' if ooms > 1 else ''})"
    return row


def probe_library(parents, mode, fast):
    """What nin_lib.runtime reports in a group made like the lessons' (a tiny ``python -c``), or an error."""
    limits = LIMITS[mode] if parents else None
    with tempfile.TemporaryFile("w+") as log:
        status, *_ = run_in_group([sys.executable, "-c", PROBE], parents, limits, lesson_env(fast), 120, log)
        log.seek(0)
        lines = log.read().strip().splitlines()
    try:
        found = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": one_line(f"the probe ended with status {status}: {lines[-1] if lines else 'no output'}")}
    if limits:
        quota, memory = found.get("cpu_quota"), found.get("memory_limit")
        found["sees_cpu_quota"] = quota is not None and quota <= limits["cpus"] + 1e-9
        found["sees_memory_limit"] = memory is not None and memory <= limits["memory_bytes"]
    return found


# ---------------------------------------------------------------------------------------------
# Goals and the table

def usable_parents(mode):
    """``(parents, None)`` where a group for ``mode`` can be made (one is made and removed to be sure), else
    ``(None, reason)``."""
    try:
        parents = find_parents(("cpu", "memory") if LIMITS[mode] else ("memory",))
        Cgroup.make(parents, LIMITS[mode]).remove()
    except CgroupUnavailable as why:
        return None, str(why)
    except OSError as error:
        return None, f"a cgroup could not be made here ({error.strerror or error})"
    return parents, None


def goal_check(rows, goals=GOALS):
    """How far each Binder-sized row is from the goals (positive: over) and whether all of it is within them."""
    lessons = []
    for row in rows:
        wall_over = row["wall_s"] - goals["lesson_wall_s"]
        peak_over = None if row.get("peak_bytes") is None else row["peak_bytes"] - goals["lesson_peak_bytes"]
        ok = row.get("error") is None and wall_over <= 0 and peak_over is not None and peak_over <= 0
        lessons.append({"lesson": row["lesson"], "wall_over_s": round(wall_over, 2), "peak_over_bytes": peak_over,
                        "ok": ok})
    total = sum(row["wall_s"] for row in rows)
    total_over = total - goals["total_wall_s"]
    return {"goals": dict(goals), "lessons": lessons, "total_wall_s": round(total, 2),
            "total_over_s": round(total_over, 2),
            "ok": bool(rows) and total_over <= 0 and all(lesson["ok"] for lesson in lessons)}


def gib(n):
    return f"{n / GiB:.2f} GiB"


def margin(over, fmt):
    """'12 s under' / '**30 s over**' for a distance from a goal (positive: over)."""
    if over is None:
        return "?"
    return f"{fmt(-over)} under" if over <= 0 else f"**{fmt(over)} over**"


def _seconds(s):
    return f"{s:.0f} s" if abs(s) >= 10 else f"{s:.1f} s"


def _accuracy_cell(row):
    return ", ".join(f"{acc:.3f} (cell {index})" for index, acc in row.get("accuracy", [])) or "—"


def _probe_sentence(mode, probe):
    if probe is None:
        return None
    if "error" in probe:
        return f"In the {mode} runs the library probe failed: {probe['error']}"
    n, why = probe["cpu_limit"]
    memory = gib(probe["memory_limit"]) if probe.get("memory_limit") else "none"
    text = f"In the {mode} runs `nin_lib.runtime` reports `cpu_limit()` = {n} ({why}) and `memory_limit()` = {memory}"
    if "sees_cpu_quota" in probe:
        seen = probe["sees_cpu_quota"] and probe["sees_memory_limit"]
        text += ": it sees the limits." if seen else ": **it does not see the limits**."
    return text + ("" if text.endswith(".") else ".")


def describe_machine(m):
    load = m.get("load_average")
    return (f"{m.get('cpu_count')} CPUs of {m.get('cpu')}, {m.get('platform')}, Python {m.get('python')}, "
            f"torch {m.get('torch')}" + (f", load average {load[0]} at the start" if load else ""))


def markdown(results):
    """The RESULTS.md section: machine, date, command, one row per lesson per mode, totals and the goal check."""
    modes = results["modes"]
    lines = ["### Lessons top to bottom, as they are and Binder-sized", "",
             "`benchmarks/lessons.py` runs every lesson top to bottom in full mode in a fresh kernel (nbclient), "
             "once on the machine as it is (`plain`) and once in a cgroup limited like a mybinder.org pod, 1 CPU of "
             "quota and 2 GiB of memory (`binder`). Wall time counts from starting the kernel to its shutdown after "
             "the last cell; peak memory is the group's, the kernel and the runner together. "
             "Accuracy is the last `test acc` a code cell prints (cells counted from 0).", "",
             f"Machine: {describe_machine(results['machine'])}. Date: {results['date'][:10]}. "
             f"Command: `{results['command']}`" + (" (fast mode)" if results.get("fast") else ""), ""]
    for mode, run in modes.items():
        if run.get("unlimited_because"):
            lines.append(f"The {mode} runs had no cgroup: {run['unlimited_because']}.")
        sentence = _probe_sentence(mode, run.get("library_sees"))
        if sentence:
            lines.append(sentence)
    lines += ["", "| lesson | mode | wall | goal 120 s | peak memory | goal 1.2 GiB | CPU time | test accuracy | "
              "slowest cell | result |",
              "| --- | --- | ---: | --- | ---: | --- | ---: | --- | --- | --- |"]
    order = list(dict.fromkeys(row["lesson"] for run in modes.values() for row in run["lessons"]))
    for lesson in order:
        for mode, run in modes.items():
            for row in (r for r in run["lessons"] if r["lesson"] == lesson):
                lines.append(_table_row(row))
    for mode, run in modes.items():
        rows = run["lessons"]
        if rows:
            check = goal_check(rows)
            peaks = [r["peak_bytes"] for r in rows if r.get("peak_bytes")]
            within = sum(l["ok"] for l in check["lessons"])
            lines.append(f"| **all {len(rows)}** | {mode} | **{_seconds(check['total_wall_s'])}** | "
                         f"{margin(check['total_over_s'], _seconds)} 8 min | "
                         f"max {gib(max(peaks)) if peaks else '?'} | | {_seconds(sum(r['cpu_s'] for r in rows))} | "
                         f"| | {within} of {len(rows)} within both goals |")
    lines += ["", goal_sentence(results)]
    return "\n".join(lines) + "\n"


def _table_row(row):
    check = goal_check([row])["lessons"][0]
    peak = gib(row["peak_bytes"]) if row.get("peak_bytes") else "?"
    slow = f"{_seconds(row['slowest_cell'][1])} (cell {row['slowest_cell'][0]})" if row.get("slowest_cell") else "—"
    result = f"error: {row['error']}".replace("|", "\\|") if row.get("error") else "ok"
    mode = row["mode"] + ("" if row.get("limited") or row["mode"] == "plain" else " (no limit)")
    return (f"| {row['lesson']} | {mode} | {_seconds(row['wall_s'])} | "
            f"{margin(check['wall_over_s'], _seconds)} | {peak} | "
            f"{margin(check['peak_over_bytes'], gib)} | {_seconds(row['cpu_s'])} | "
            f"{_accuracy_cell(row)} | {slow} | {result} |")


def goal_sentence(results):
    """One line: are the Binder-sized runs within the goals?"""
    run = results["modes"].get("binder")
    if not run or not run["lessons"]:
        return "Goals (every lesson within 120 s and 1.2 GiB, all within 8 min) apply to the binder runs; none ran."
    check = goal_check(run["lessons"])
    n = len(check["lessons"])
    fast_wall = sum(l["wall_over_s"] <= 0 for l in check["lessons"])
    small = sum(l["peak_over_bytes"] is not None and l["peak_over_bytes"] <= 0 for l in check["lessons"])
    failed = [l["lesson"] for l, r in zip(check["lessons"], run["lessons"]) if r.get("error")]
    where = "under the 1-CPU/2-GiB limit" if run.get("limited", True) else "(binder runs without the limit)"
    return (f"Goals {where}: {fast_wall} of {n} lessons within 120 s, {small} of {n} within 1.2 GiB"
            + (f", {len(failed)} failed ({', '.join(failed)})" if failed else "")
            + f"; all together {_seconds(check['total_wall_s'])}, "
            + margin(check["total_over_s"], _seconds) + " the 8 minutes: "
            + ("**all goals met**." if check["ok"] else "**not all goals met**."))


def write_section(path, text, start=START_MARKER, end=END_MARKER):
    """Put ``text`` between the two markers in the file at ``path`` (the section is added at the end if absent)."""
    from nin_lib import checks, runtime

    path = Path(path)
    old = path.read_text() if path.exists() else ""
    block = f"{start}\n{text.rstrip()}\n{end}"
    has_start, has_end = start in old, end in old
    if has_start != has_end or (has_start and old.index(start) > old.index(end)):
        raise checks.refuse(f"{path} has only one of the markers {start!r} and {end!r}, or them out of order; "
                            f"fix the file so that both or neither are there")
    if has_start:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old.strip() else "") + block + "\n"
    with runtime.atomic_path(path) as tmp:
        tmp.write_text(new)
    return new


# ---------------------------------------------------------------------------------------------
# The command line

def build_parser():
    from nin_lib import checks
    from nin_lib.cli import Parser

    p = Parser(prog="benchmarks/lessons.py", description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="run only these lessons: a file name, its stem or its number (01), or a notebook path")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                   help="plain (this machine as it is), binder (1 CPU of quota, 2 GiB); default both")
    p.add_argument("--timeout", type=checks.whole_number_text(1), default=900,
                   help="seconds each lesson may run before it is stopped (default 900)")
    p.add_argument("--json", default=str(Path("benchmarks") / "lessons.json"),
                   help="the JSON file to write (default benchmarks/lessons.json)")
    p.add_argument("--write-results", action="store_true",
                   help="write the table into the results file between its lessons markers")
    p.add_argument("--results", default=None, help="the results file (default benchmarks/RESULTS.md; implies "
                   "--write-results)")
    p.add_argument("--fast", action="store_true", help="set NIN_FAST=1 for the lessons (tests only: the figures "
                   "are then not the lessons' own)")
    p.add_argument("--command", nargs=argparse.REMAINDER, default=None, metavar="COMMAND",
                   help="instead of the lessons, run this command (everything after --command) in each mode's group "
                   "and print its wall time and peak memory, e.g. --modes binder --command python -m nin_lib train")
    return p


def command_main(command, modes, timeout):
    """Run ``command`` once per mode (binder: in a 1-CPU/2-GiB group) and say how long it took and what it used."""
    for mode in modes:
        parents, why = usable_parents(mode)
        if why:
            print(f"{mode}: runs without a cgroup: {why}.", flush=True)
        status, wall, cpu, peak, source, kills = run_in_group(command, parents, LIMITS[mode] if parents else None,
                                                              lesson_env(False), timeout, sys.stdout)
        print(f"{mode}: exit status {status}, {wall:.1f} s wall, {cpu:.1f} s CPU, peak "
              f"{gib(peak) if peak else '?'} ({source}){f', {kills} out-of-memory kill(s)' if kills else ''}",
              flush=True)
    return 0


def resolve_lessons(names, folder=NOTEBOOKS):
    """The notebooks to run: all of ``folder`` in order, or those ``names`` pick (stem, file name, number, path)."""
    from nin_lib import checks

    available = sorted(Path(folder).glob("*.ipynb"))
    if not names:
        return available
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path.resolve())
            continue
        found = [nb for nb in available if name in (nb.stem, nb.name, nb.stem.split("_")[0])]
        if not found:
            raise checks.refuse(f"--only {name!r} is not a lesson; choose one of "
                                f"{', '.join(nb.stem for nb in available)} (or its number, such as 01)")
        chosen.extend(found)
    return list(dict.fromkeys(chosen))


def _shown(path):
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def save(results, path):
    from nin_lib import runtime
    with runtime.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=1) + "\n")


def _report_line(row):
    check = goal_check([row])["lessons"][0]
    peak = gib(row["peak_bytes"]) if row.get("peak_bytes") else "peak ?"
    acc = f", test acc {_accuracy_cell(row)}" if row.get("accuracy") else ""
    return (f"{row['mode']:>6} {row['lesson']}: {_seconds(row['wall_s'])} "
            f"({margin(check['wall_over_s'], _seconds).strip('*')} 120 s), {peak} "
            f"({margin(check['peak_over_bytes'], gib).strip('*')} 1.2 GiB){acc}"
            f"{', error: ' + row['error'] if row.get('error') else ''}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from nin_lib import checks, runtime

    if args.command is not None:
        if not args.command:
            raise checks.refuse("--command needs the command to run after it, e.g. --command python -m nin_lib train")
        return command_main(args.command, list(dict.fromkeys(args.modes)), args.timeout)
    lessons = resolve_lessons(args.only)
    if not lessons:
        raise checks.refuse(f"there are no lessons in {_shown(NOTEBOOKS)}; add notebooks or name them with --only")
    modes = list(dict.fromkeys(args.modes))
    results_path = args.results or (str(Path("benchmarks") / "RESULTS.md") if args.write_results else None)
    results = {"format": 1, "complete": False, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": shlex.join(["python", "benchmarks/lessons.py", *argv]), "machine": runtime.machine(),
               "fast": args.fast, "timeout_s": args.timeout, "limits": {m: LIMITS[m] for m in modes},
               "goals": GOALS, "modes": {}}
    print(f"{len(lessons)} lessons x {len(modes)} modes ({', '.join(modes)}); writing {args.json}", flush=True)
    for mode in modes:
        parents, why = usable_parents(mode)
        run = results["modes"][mode] = {"cgroup": parents[0] if parents else None,
                                        "limited": bool(parents and LIMITS[mode]), "unlimited_because": why,
                                        "library_sees": probe_library(parents, mode, args.fast), "lessons": []}
        if why:
            print(f"{mode}: runs without a cgroup{' (so without the 1-CPU/2-GiB limit)' if LIMITS[mode] else ''}: "
                  f"{why}.", flush=True)
        print(_probe_sentence(mode, run["library_sees"]).replace("**", "").replace("`", ""), flush=True)
        for notebook in lessons:
            row = measure_lesson(notebook, mode, parents, args.timeout, args.fast)
            row["notebook"] = _shown(notebook)
            run["lessons"].append(row)
            save(results, args.json)
            print(_report_line(row), flush=True)
    if "binder" in results["modes"]:
        results["goal_check"] = goal_check(results["modes"]["binder"]["lessons"])
    results["complete"] = True
    save(results, args.json)
    table = markdown(results)
    print()
    print(table)
    if results_path:
        write_section(results_path, table)
        print(f"wrote the table into {results_path}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        sys.exit(one_main(sys.argv[2:]))
    from nin_lib.cli import run_script
    sys.exit(run_script(main))
