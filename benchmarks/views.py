"""Redraw speed of every view: one interaction (a slider step, a new test image) up to the PNG a kernel would send.

Each view is built as its lesson builds it and given display handles like a Jupyter kernel's: a figure handed to
one becomes PNG bytes through IPython's inline formatter (``print_figure(fig, 'png', bbox_inches='tight')``), an
image or HTML its data (a panel that draws its own PNG is timed with that drawing). One interaction is setting one
control's value, which redraws everything the view shows; lesson 05's is ``redraw()`` of the training panel's
pictures after a short run. Per view: one warm-up interaction, then ``--interactions`` timed ones spread over its
controls (sliders step up and down, lists cycle, boxes toggle, images change), their median and worst time and
the process's peak resident memory so far. Goal: every interaction within 0.5 s on one CPU with 1 GiB of a Binder
pod's 2 GiB to spare.

    python benchmarks/views.py                                # every view, on this machine as it is
    python benchmarks/views.py --one-cpu --json views.json    # in a cgroup of 1 CPU of quota and 2 GiB (root)
    python benchmarks/views.py --only conv_cost class_maps --interactions 40

A view whose factory is not in ``nin_lib.widgets`` (or whose recorded net is not shipped) is skipped with a line.
"""
import argparse
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from functools import cached_property
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

GiB, MiB = 2**30, 2**20
GOAL_S = 0.5
LIMITS = {"cpu_period_us": 100_000, "cpu_quota_us": 100_000, "memory_bytes": 2 * GiB}
CGROUP = Path("/sys/fs/cgroup")


class Skip(Exception):
    """A view that cannot be built here: the reason is printed and the other views go on."""


class Handle:
    """A kernel's display handle: a figure is rendered to PNG as the inline backend does; an image or HTML kept."""

    def update(self, item):
        from IPython.core.pylabtools import print_figure
        self.data = print_figure(item, "png", bbox_inches="tight") if isinstance(item, Figure) else item.data


class Lessons:
    """What the views are built from, loaded once when a view first needs it."""

    @property
    def widgets(self):
        from nin_lib import widgets
        return widgets

    def factory(self, name):
        if not hasattr(self.widgets, name):
            raise Skip(f"nin_lib.widgets has no {name} yet")
        return getattr(self.widgets, name)

    @cached_property
    def fmnist(self):
        from nin_lib import data
        return data.load_fashion_mnist()

    def test_images(self, n):  # (n, 1, 28, 28) in [0, 1] and their labels, as lessons 01 and 04 take them
        return self.fmnist.test_images[:n].unsqueeze(1).float().div(255), self.fmnist.test_labels[:n]

    def nin(self):  # lesson 03's net: the chapter's NiN
        from nin_lib import models
        return models.nin()

    @cached_property
    def maps_net(self):  # lessons 01 and 04: the shipped net of the maps preset
        from nin_lib import checks, records
        found = records.runs("maps")
        if not found:
            raise Skip("no recorded 'maps' run ships with nin_lib yet")
        try:
            return records.load_weights(found[0])
        except checks.Refusal as error:  # weights not shipped, or not the ones recorded
            raise Skip(str(error)) from None

    def centres(self, net):  # lesson 04: (centre of map cell 0, stride between cells) in input pixels
        from nin_lib import shapes
        (a0, a1), (b0, b1) = (shapes.cell_field(shapes.windows(net), cell) for cell in (0, 1))
        return (a0 + a1) / 2, (b0 + b1 - a0 - a1) / 2

    def trained_panel(self):
        panel = self.widgets.TrainingPanel(self.fmnist, preset="quick", device="cpu", subset=1000)
        if not hasattr(panel, "redraw"):
            raise Skip("TrainingPanel has no redraw() yet")
        if panel.train() is False:
            raise Skip(f"the training panel did not start: {panel.error}")
        panel.wait()
        return panel


NEW_IMAGES = list(range(1, 100))  # a new test image each time
# name: (lesson, how the lesson builds it, values to cycle per control where the generic steps do not fit)
VIEWS = {
    "conv_cost": ("01", lambda L: L.factory("conv_cost_panel")(), {}),
    "one_pixel": ("01", lambda L: L.factory("one_pixel_panel")(L.maps_net[0][:3], L.maps_net[0][3],
                                                               L.test_images(100)[0], index=0, row=21, col=20),
                  {"index": NEW_IMAGES}),
    "nin_params": ("02", lambda L: L.factory("nin_params_panel")(head="fc", hidden=256), {"hidden": [512, 1024, 256]}),
    "input_size": ("03", lambda L: L.factory("input_size_panel")(L.nin(), input_size=224, depth="leaf"), {}),
    "receptive_field": ("03", lambda L: L.factory("receptive_field_panel")(L.nin(), L.fmnist.test_images[0], layer=7,
                                                                           row=0, col=0, input_size=224), {}),
    "adaptive_windows": ("04", lambda L: L.factory("adaptive_windows_panel")(size=10, out=4), {}),
    "class_maps": ("04", lambda L: L.factory("class_maps_panel")(L.maps_net, *L.test_images(200), index=1, dx=4,
                                                                 centres=L.centres(L.maps_net)),
                   {"index": NEW_IMAGES}),
    "training": ("05", lambda L: L.trained_panel(), None),  # None: the interaction is panel.redraw()
    "experiment": ("06", lambda L: L.factory("ExperimentPanel")(L.fmnist, device="cpu"), {"lr": [0.05, 0.1, 0.2]}),
}


def steps(control):
    """Endless new values for one control: a slider steps up three steps and back (down first at its top),
    a list cycles its options, a box toggles, a number box goes up by one (an integer) or doubles and halves."""
    import ipywidgets as W
    value = control.value
    if isinstance(control, (W.IntSlider, W.FloatSlider, W.FloatLogSlider)):
        log = isinstance(control, W.FloatLogSlider)
        at = math.log(value, control.base) if log else value
        up, down = (int(room / control.step + 1e-9) for room in (control.max - at, at - control.min))
        k, step = (min(3, up), control.step) if up >= min(3, down) else (min(3, down), -control.step)
        values = [at + i * step for i in [*range(1, k + 1), *range(k - 1, -1, -1)]] or [at]
        values = [control.base ** v if log else round(v, 10) for v in values]
        values = [int(v) for v in values] if isinstance(control, W.IntSlider) else values
    elif isinstance(control, W.Checkbox):
        values = [not value, value]
    elif hasattr(control, "options"):
        options = [o[1] if isinstance(o, tuple) else o for o in control.options]
        i = options.index(value)
        values = options[i + 1:] + options[:i + 1]
    elif isinstance(control, W.IntText):
        values = [value + 1, value + 2, value + 1, value]
    else:
        values = [value * 2, value, value / 2, value]
    while True:
        yield from values


def cycle(values):
    while True:
        yield from values


def interactions(panel, overrides, n):
    """``n + 1`` (label, action) pairs, round-robin over the panel's controls (the first is the warm-up)."""
    sources = {name: cycle(overrides[name]) if name in overrides else steps(control)
               for name, control in panel.controls.items()}
    names = list(sources)
    order = [names[i % len(names)] for i in range(n + 1)]
    return [(name, lambda c=panel.controls[name], v=next(sources[name]): setattr(c, "value", v)) for name in order]


def measure(name, lessons, n):
    """One view's row: controls moved, n, median and worst ms, peak RSS; raises Skip where it cannot be built."""
    lesson, make, overrides = VIEWS[name]
    panel = make(lessons)
    if overrides is None:
        actions = [("redraw", panel.redraw)] * (n + 1)
    else:
        panel.handles = [Handle() for _ in panel.result()]  # what showing the panel in a kernel gives it
        actions = interactions(panel, overrides, n)
    times, moved, messages = [], [], 0
    for i, (label, action) in enumerate(actions):
        start = time.perf_counter()
        action()
        if i:  # the first is the warm-up
            times.append(time.perf_counter() - start)
            moved += [label] if label not in moved else []
            messages += any("color:#b00020" in str(getattr(h, "data", "")) for h in panel.handles)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    moved = [label for label in getattr(panel, "controls", {}) if label in moved] or moved  # in the panel's order
    return {"view": name, "lesson": lesson, "controls": moved, "n": len(times),
            "median_ms": round(statistics.median(times) * 1000, 1), "worst_ms": round(max(times) * 1000, 1),
            "within_goal": max(times) <= GOAL_S, "messages": messages, "peak_rss_bytes": peak,
            "times_ms": [[label, round(t * 1000, 1)] for (label, _), t in zip(actions[1:], times)]}


def table(rows, limited):
    head = "| view | lesson | controls moved | n | median | worst | within 0.5 s | peak RSS |"
    head += " spare of 2 GiB |" if limited else ""
    lines = [head, "|" + " --- |" * 3 + " ---: |" * (head.count("|") - 4)]
    for r in rows:
        note = f" ({r['messages']} shown a sentence)" if r["messages"] else ""
        line = (f"| {r['view']} | {r['lesson']} | {', '.join(r['controls'])}{note} | {r['n']} | "
                f"{r['median_ms']:.1f} ms | {r['worst_ms']:.1f} ms | {'yes' if r['within_goal'] else '**no**'} | "
                f"{r['peak_rss_bytes'] / MiB:.0f} MiB |")
        lines.append(line + (f" {(LIMITS['memory_bytes'] - r['peak_rss_bytes']) / GiB:.2f} GiB |" if limited else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# --one-cpu: this script again, in a cgroup v1 like a Binder pod's

def own_group(controller, proc="/proc/self/cgroup"):
    """This process's cgroup folder in a v1 hierarchy (new groups go below it, inside any limit it has)."""
    for line in Path(proc).read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            folder = CGROUP / controller / path.lstrip("/")
            return folder if folder.is_dir() else CGROUP / controller
    return CGROUP / controller


def limit_writes(cpu, memory):
    """The files a group's limits are written to, and what: 1 CPU of quota per period, 2 GiB of memory."""
    return [(Path(cpu) / "cpu.cfs_period_us", LIMITS["cpu_period_us"]),
            (Path(cpu) / "cpu.cfs_quota_us", LIMITS["cpu_quota_us"]),
            (Path(memory) / "memory.limit_in_bytes", LIMITS["memory_bytes"])]


def child_command(cpu, memory, argv):
    """A shell that moves itself into both groups, then becomes this script with ``argv``."""
    return ["sh", "-c", 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"', "sh",
            str(Path(cpu) / "tasks"), str(Path(memory) / "tasks"), sys.executable, __file__, *argv]


def run_one_cpu(argv):
    if os.geteuid() != 0:
        return fail(f"--one-cpu needs root to make cgroups (this is uid {os.geteuid()}); run without --one-cpu")
    if not all((CGROUP / c / "tasks").exists() for c in ("cpu", "memory")):
        return fail(f"--one-cpu needs the cgroup v1 cpu and memory hierarchies under {CGROUP}; they are not mounted")
    name, made = f"nin-views-{os.getpid()}-{uuid.uuid4().hex[:6]}", []
    try:
        cpu, memory = own_group("cpu") / name, own_group("memory") / name
        for folder in (cpu, memory):
            folder.mkdir()
            made.append(folder)
        for path, value in limit_writes(cpu, memory):
            path.write_text(str(value))
        code = subprocess.call(child_command(cpu, memory, argv))
        return code if code >= 0 else fail(f"the run was killed by signal {-code} (over 2 GiB of memory?)")
    except OSError as error:
        return fail(f"--one-cpu could not make its cgroups: {error}")
    finally:
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError as error:
                fail(f"the cgroup {folder} could not be removed: {error}")


def fail(sentence):
    print(sentence, file=sys.stderr)
    return 2


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description="Redraw speed of every view of the lessons.")
    parser.add_argument("--interactions", type=int, default=20, help="timed interactions per view (default 20)")
    parser.add_argument("--one-cpu", action="store_true", help="in a cgroup of 1 CPU of quota and 2 GiB (root)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"these views: {', '.join(VIEWS)}")
    parser.add_argument("--limited", action="store_true", help=argparse.SUPPRESS)  # inside --one-cpu's cgroup
    args = parser.parse_args(argv)
    unknown = [name for name in args.only or [] if name not in VIEWS]
    if unknown:
        return fail(f"--only {unknown[0]!r} is not a view; the views are {', '.join(VIEWS)}")
    if args.interactions < 1:
        return fail(f"--interactions must be a whole number of at least 1, not {args.interactions}")
    if args.one_cpu:
        return run_one_cpu(["--limited" if a == "--one-cpu" else a for a in argv])

    import torch
    from nin_lib import runtime
    torch.set_num_threads(runtime.cpu_limit()[0])  # as many threads as the quota allows
    shown = ["--one-cpu" if a == "--limited" else a for a in argv]
    results = {"command": shlex.join(["python", "benchmarks/views.py", *shown]), "machine": runtime.machine(),
               "limited": args.limited, "goal_s": GOAL_S, "views": [], "skipped": []}
    m = results["machine"]
    memory = f"{m['memory_limit'] / GiB:g} GiB" if m["memory_limit"] else "none"
    print(f"{m['cpu']}, {m['cpu_count']} cores seen, torch {m['torch']} with {m['torch_threads']} threads, "
          f"CPU quota {m['cpu_quota'] or 'none'}, memory limit {memory}")
    lessons = Lessons()
    for name in args.only or VIEWS:
        try:
            results["views"].append(measure(name, lessons, args.interactions))
        except Skip as why:
            print(f"skipped {name}: {why}")
            results["skipped"].append({"view": name, "why": str(why)})
    print(table(results["views"], args.limited))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
