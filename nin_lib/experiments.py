"""The chapter's claims as small, seeded experiments (lesson 06): configurations, runs, summaries.

One *configuration* is a net (GAP head, AlexNet-style FC head, or a head that reduces to the
classes late) trained with one recipe (a ``presets.Preset``); it runs once per seed. One
*experiment* compares a few configurations that differ in one thing. ``run_grid`` runs a grid of
configurations over several seeds and returns a JSON-ready dict with every seed's numbers, their
mean and spread, the machine, the date and the command; ``benchmarks/experiments.py`` is its
command line. ``live_run`` is one tiny run for lesson 06's widget (seconds on a CPU).
"""
import json
import math
import os
import platform
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from . import data as data_mod
from . import models, presets, runtime, shapes, train

FORMAT = "nin-experiments-1"
HEADS = ("gap", "fc", "late")
METRICS = ("test_acc", "train_acc", "gap", "final_loss", "seconds")
STALLED_BELOW = 0.2  # a run whose test accuracy stays under this never left chance level (0.1)
DATA_SEED = 0  # the training and test subsets are the same for every configuration and seed

# ---------------------------------------------------------------------------------------------
# Recipes and configurations


def recipe(name, *, arch=28, width=0.25, batch_size=128, num_epochs=10):
    """A ``Preset`` for one of the recipes the experiments compare (lesson 06).

    'd2l': the seed's recipe (SGD lr 0.1, no momentum, no BatchNorm, Xavier init, dropout 0.5);
    'base': the same net with BatchNorm, trained with Nesterov momentum 0.9 and a one-cycle
    schedule (the recipe the ablations share: it trains in a few hundred steps);
    'improved': the ``improved`` preset (base + weight decay, label smoothing, random flips).
    At ``arch=28`` the images stay 28×28 (no resize); at 224 they are resized as in the book.
    """
    size = dict(arch=arch, width=width, batch_size=batch_size, num_epochs=num_epochs,
                resize=None if arch == 28 else 224)
    if name == "d2l":
        return presets.get_preset("d2l", **size)
    if name == "base":
        return presets.get_preset("d2l", batch_norm=True, momentum=0.9, nesterov=True, schedule="onecycle", **size)
    if name == "improved":
        return presets.get_preset("improved", **size)
    raise ValueError(f"recipe {name!r} is not known; choose one of d2l, base, improved.")


# name: (label, recipe, head, changes to the recipe's net)
CONFIGS = {
    "base": ("GAP head (NiN), BatchNorm, dropout 0.5, two 1×1", "base", "gap", {}),
    "fc-head": ("AlexNet-style FC head instead of GAP", "base", "fc", {}),
    "no-dropout": ("dropout off (0.0)", "base", "gap", {"dropout": 0.0}),
    "one-1x1": ("one 1×1 conv per block", "base", "gap", {"num_1x1": 1}),
    "no-1x1": ("no 1×1 conv (plain conv blocks)", "base", "gap", {"num_1x1": 0}),
    "no-bn": ("no BatchNorm (base recipe otherwise)", "base", "gap", {"batch_norm": False}),
    "late-head": ("last block keeps all channels, reduces to 10 only in its last 1×1", "base", "late", {}),
    "d2l": ("the seed's recipe: SGD lr 0.1, no BatchNorm", "d2l", "gap", {}),
    "improved": ("the improved preset: + weight decay, label smoothing, flips", "improved", "gap", {}),
}

# the seed's own 224-px recipes (for a GPU): full training and test sets, 10 epochs
CONFIGS_224 = {
    "d2l-224": ("the seed's recipe at 224 px (preset d2l)", "d2l", "gap", {}),
    "improved-224": ("the improved preset at 224 px", "improved", "gap", {}),
}

EXPERIMENTS = [
    {"key": "head", "title": "GAP head vs fully connected head (全局平均池化 vs 全连接层)",
     "question": "Does replacing the fully connected head by a last NiN block and global average pooling "
                 "cut parameters and overfitting?",
     "book": "Fully connected layers have many parameters and overfit easily; NiN's GAP head avoids them.",
     "configs": ["base", "fc-head"]},
    {"key": "dropout", "title": "dropout on vs off (暂退法)",
     "question": "Does the dropout layer before the last block help test accuracy?",
     "book": "NiN keeps a dropout layer (p = 0.5) before its last block, as AlexNet does in its head.",
     "configs": ["base", "no-dropout"]},
    {"key": "num_1x1", "title": "two 1×1 convolutions per block vs one vs none (1×1卷积层)",
     "question": "What do the two 1×1 convolutions of each NiN block buy? (the chapter's exercise)",
     "book": "The 1×1 convolutions act as a per-pixel MLP, adding non-linearity across channels.",
     "configs": ["base", "one-1x1", "no-1x1"]},
    {"key": "batch_norm", "title": "BatchNorm vs none (批量规范化)",
     "question": "Does BatchNorm change how reliably the net trains with the same recipe?",
     "book": "The chapter's NiN has no BatchNorm (it came later); the next chapter introduces it.",
     "configs": ["base", "no-bn"]},
    {"key": "recipe", "title": "the seed's recipe and what the improved preset changes (训练方法)",
     "question": "How much do the results of the seed's recipe vary across seeds, and what do momentum with "
                 "a one-cycle schedule, BatchNorm and regularisation change, one step at a time?",
     "book": "The chapter trains NiN with plain SGD at lr 0.1 for 10 epochs and reports one run.",
     "configs": ["d2l", "no-bn", "base", "improved"]},
    {"key": "head_reduction", "title": "384×5×5 to 10×5×5 in one step, and a remedy (练习)",
     "question": "Does reducing to the 10 class maps only in the last 1×1 conv (keeping all channels before) "
                 "help, compared with the seed's 3×3 conv straight to 10 channels?",
     "book": "Exercise: what goes wrong when one layer turns 384×5×5 into 10×5×5?",
     "configs": ["base", "late-head"]},
]

EXPERIMENTS_224 = [
    {"key": "recipe_224", "title": "the seed's recipe at 224 px across seeds, and the improved preset",
     "question": "How much does the seed's own run (224 px, 10 epochs) vary across seeds, and what does the "
                 "improved preset change?",
     "book": "The chapter reports one run of its recipe.",
     "configs": ["d2l-224", "improved-224"]},
]

# grid sizes: the tiny one for tests and CI, the CPU one (about 20 minutes on 2 cores), the GPU one
MODES = {
    "tiny": dict(arch=28, width=0.1, train_size=96, test_size=96, batch_size=32, num_epochs=1, fc_hidden=64),
    "cpu": dict(arch=28, width=0.25, train_size=2000, test_size=2000, batch_size=64, num_epochs=20, fc_hidden=1024),
    "full": dict(arch=224, width=1.0, train_size=None, test_size=None, batch_size=128, num_epochs=10, fc_hidden=4096),
}


def config_names(full=False):
    """The configuration names of the 28-px grid (plus the 224-px ones with ``full``)."""
    return list(CONFIGS) + (list(CONFIGS_224) if full else [])


def _config(name):
    if name in CONFIGS:
        return CONFIGS[name]
    if name in CONFIGS_224:
        return CONFIGS_224[name]
    raise ValueError(f"configuration {name!r} is not known; choose from {', '.join(config_names(True))}.")


def config_preset(name, settings):
    """The ``Preset`` of one configuration at the grid's sizes (``settings`` is a ``MODES`` entry)."""
    _, recipe_name, _, changes = _config(name)
    return recipe(recipe_name, arch=settings["arch"], width=settings["width"], batch_size=settings["batch_size"],
                  num_epochs=settings["num_epochs"]).with_overrides(**changes)


# ---------------------------------------------------------------------------------------------
# Nets


def late_reduction_block(in_channels, num_classes, *, batch_norm=False):
    """A last block that keeps ``in_channels`` through its 3×3 conv and first 1×1 conv and reduces to
    the classes only in its last 1×1 conv (lesson 06's remedy for '384×5×5 to 10×5×5 in one step')."""
    def conv(cin, cout, k, p, bn):
        layers = [nn.Conv2d(cin, cout, kernel_size=k, padding=p)]
        return layers + ([nn.BatchNorm2d(cout)] if bn else []) + [nn.ReLU()]
    return nn.Sequential(*conv(in_channels, in_channels, 3, 1, batch_norm),
                         *conv(in_channels, in_channels, 1, 0, batch_norm),
                         *conv(in_channels, num_classes, 1, 0, False))


def build_net(head, p, *, fc_hidden=4096, num_classes=10):
    """The net of one configuration: ``head`` 'gap' (the seed's NiN), 'fc' (same trunk, AlexNet-style
    FC head of ``fc_hidden`` units) or 'late' (NiN whose last block reduces to the classes late),
    with the preset ``p``'s arch, width, BatchNorm, dropout and number of 1×1 convs; initialised as ``p`` says."""
    kw = dict(arch=p.arch, width=p.width, batch_norm=p.batch_norm, dropout=p.dropout, num_1x1=p.num_1x1,
              num_classes=num_classes)
    if head == "gap":
        net = models.nin(**kw)
    elif head == "fc":
        net = models.nin_fc_head(hidden=fc_hidden, input_size=p.image_size(), **kw)
    elif head == "late":
        net = models.nin(**kw)
        cin = net[-3][0].in_channels  # the last NiN block: [..., Dropout, block, GAP, Flatten]
        net[-3] = late_reduction_block(cin, num_classes, batch_norm=p.batch_norm)
    else:
        raise ValueError(f"head {head!r} is not known; choose one of {', '.join(HEADS)}.")
    if p.init == "xavier":
        models.init_xavier(net)
    return net


# ---------------------------------------------------------------------------------------------
# Data


def fixed_subsets(fmnist, train_size, test_size, seed=DATA_SEED):
    """The training and test images every configuration uses: seeded subsets (None = the whole split)."""
    def pick(images, labels, size):
        if size is None:
            return images, labels
        index = data_mod.subset_indices(len(images), size, seed)
        return images[index], labels[index]
    return (pick(fmnist.train_images, fmnist.train_labels, train_size),
            pick(fmnist.test_images, fmnist.test_labels, test_size))


# ---------------------------------------------------------------------------------------------
# One run, a grid of runs


def run_one(name, seed, subsets, settings, device="cpu"):
    """Train configuration ``name`` with ``seed`` on the fixed ``subsets`` (``fixed_subsets``) at the
    grid's ``settings``; return its numbers (a dict, see ``train_and_measure``)."""
    p = config_preset(name, settings).with_overrides(seed=seed)
    return train_and_measure(_config(name)[2], p, subsets, fc_hidden=settings["fc_hidden"], device=device)


def train_and_measure(head, p, subsets, *, fc_hidden=4096, device="cpu"):
    """Train the ``head`` net of preset ``p`` (seeded with ``p.seed``) on ``subsets`` and measure it.

    Returns seed, test_acc, train_acc, gap (train - test), final_loss, loss_per_epoch, seconds,
    stalled (test accuracy still near chance) and stopped (why ``fit`` stopped early, or None).
    Train accuracy is measured after training in eval mode on the training images (no dropout,
    no flips), so the gap between train and test accuracy is the overfitting.
    """
    device = runtime.pick_device(device)
    (train_X, train_y), (test_X, test_y) = subsets
    runtime.seed_everything(p.seed)
    net = build_net(head, p, fc_hidden=fc_hidden)
    cl = device.type in ("cpu", "cuda")  # channels_last: 1.7× faster on a CPU too for these nets
    batch = dict(device=device, channels_last=cl, resize=p.resize)
    train_iter = data_mod.Batches(train_X, train_y, p.batch_size, shuffle=True, seed=p.seed, flip=p.flip,
                                  drop_last=len(train_y) > p.batch_size, **batch)
    eval_bs = min(p.eval_batch_size, len(test_y), len(train_y))
    train_eval = data_mod.Batches(train_X, train_y, eval_bs, **batch)
    test_iter = data_mod.Batches(test_X, test_y, eval_bs, **batch)
    optimizer = presets.make_optimizer(p, net)
    scheduler = presets.make_scheduler(p, optimizer, len(train_iter))
    loss = nn.CrossEntropyLoss(label_smoothing=p.label_smoothing)
    start = time.perf_counter()
    history = train.fit(net, train_iter, None, num_epochs=p.num_epochs, optimizer=optimizer, scheduler=scheduler,
                        loss=loss, device=device, amp="auto", channels_last=cl, progress=False, verbose=False)
    test_acc = train.evaluate(net, test_iter, device, channels_last=cl)
    train_acc = train.evaluate(net, train_eval, device, channels_last=cl)
    losses = [e["loss"] for e in history.epochs]
    return {"seed": p.seed, "test_acc": test_acc, "train_acc": train_acc, "gap": train_acc - test_acc,
            "final_loss": losses[-1] if losses and math.isfinite(losses[-1]) else None,
            "loss_per_epoch": [round(x, 5) if math.isfinite(x) else None for x in losses],
            "seconds": time.perf_counter() - start, "stalled": test_acc < STALLED_BELOW,
            "stopped": history.reason}


def summarize(values):
    """Mean, sample standard deviation (the spread), min, max and count of a list of numbers."""
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n}


def summarize_runs(runs):
    """``summarize`` for every metric of a configuration's runs, plus how many runs stalled at chance."""
    out = {m: summarize([r[m] for r in runs]) for m in METRICS}
    out["stalled"] = sum(bool(r["stalled"]) for r in runs)
    return out


def machine():
    """Where a grid ran: OS, Python, torch, CPU model and cores, and the load when it started."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"platform": platform.platform(terse=True), "python": platform.python_version(),
            "torch": torch.__version__, "cpu": cpu, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def grid_settings(mode, **overrides):
    """The sizes of a grid (``MODES[mode]``) with some changed (num_epochs, train_size, width, ...)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not known; choose one of {', '.join(MODES)}.")
    settings = dict(MODES[mode])
    limits = {"train_size": 60000, "test_size": 10000, "num_epochs": 1000, "batch_size": 60000, "fc_hidden": 65536}
    for key, value in overrides.items():
        if key not in settings:
            raise ValueError(f"grid setting {key!r} is not known; choose from {', '.join(settings)}.")
        if value is None:
            continue
        if key in limits and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limits[key]):
            raise ValueError(f"{key} {value!r} is not allowed; use a whole number from 1 to {limits[key]:,}.")
        settings[key] = value
    if settings["train_size"] is not None and settings["batch_size"] > settings["train_size"]:
        settings["batch_size"] = settings["train_size"]
    return settings


def _entry(name, settings, device):
    label, recipe_name, head, _ = _config(name)
    p = config_preset(name, settings)
    net = build_net(head, p, fc_hidden=settings["fc_hidden"])
    keys = ("arch", "width", "batch_norm", "dropout", "num_1x1", "init", "lr", "momentum", "nesterov",
            "weight_decay", "schedule", "label_smoothing", "batch_size", "num_epochs", "flip")
    return {"label": label, "recipe": recipe_name, "head": head, "preset": {k: getattr(p, k) for k in keys},
            "image_size": p.image_size(), "train_size": settings["train_size"] or 60000,
            "test_size": settings["test_size"] or 10000,
            "fc_hidden": settings["fc_hidden"] if head == "fc" else None,
            "parameters": models.count_parameters(net),
            "macs_per_image": shapes.trace(net, p.image_size()).macs,
            "device": runtime.describe_device(device), "runs": [], "summary": None}


def run_grid(names, seeds, settings, *, fmnist=None, device="cpu", settings_224=None, out=None, command=None,
             mode=None, log=print):
    """Run every configuration in ``names`` once per seed and return the results (a JSON-ready dict).

    28-px configurations use ``settings``; 224-px ones (``CONFIGS_224``) use ``settings_224``.
    With ``out`` the file is rewritten after every run (``complete`` is False until the end), so a
    run cut short keeps what it measured.
    """
    if not names:
        raise ValueError("run_grid needs at least one configuration name.")
    for name in names:
        _config(name)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds {seeds!r} are not allowed; give one or more whole numbers >= 0.")
    device = runtime.pick_device(device)
    if fmnist is None:
        fmnist = data_mod.load_fashion_mnist()
    if any(n in CONFIGS_224 for n in names) and settings_224 is None:
        settings_224 = dict(MODES["full"])
    started = time.perf_counter()
    results = {"format": FORMAT, "mode": mode, "complete": False,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": command, "machine": machine(), "device": runtime.describe_device(device),
               "seeds": list(seeds), "settings": settings if any(n in CONFIGS for n in names) else None,
               "settings_224": settings_224 if any(n in CONFIGS_224 for n in names) else None,
               "stalled_below": STALLED_BELOW, "data_seed": DATA_SEED,
               "experiments": [e for e in EXPERIMENTS + EXPERIMENTS_224 if all(c in names for c in e["configs"])],
               "configs": {}, "seconds": 0.0}
    cache = {}
    for name in names:
        s = settings_224 if name in CONFIGS_224 else settings
        key = (s["train_size"], s["test_size"])
        if key not in cache:
            cache[key] = fixed_subsets(fmnist, s["train_size"], s["test_size"])
        entry = results["configs"][name] = _entry(name, s, device)
        for seed in seeds:
            r = run_one(name, seed, cache[key], s, device)
            entry["runs"].append(r)
            entry["summary"] = summarize_runs(entry["runs"])
            results["seconds"] = time.perf_counter() - started
            if log:
                log(f"{name:>13} seed {seed}: test acc {r['test_acc']:.3f}, train acc {r['train_acc']:.3f}, "
                    f"{r['seconds']:.1f} s")
            if out is not None:
                save_results(results, out)
    results["complete"] = True
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if out is not None:
        save_results(results, out)
    return results


def save_results(results, path):
    """Write results as JSON atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path):
    """Read a results file written by ``run_grid``; a missing or foreign file is a ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"results file {path.name!r} does not exist; run benchmarks/experiments.py to make it.")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ValueError(f"results file {path.name!r} is not valid JSON; run benchmarks/experiments.py again.") from None
    if not isinstance(results, dict) or results.get("format") != FORMAT:
        raise ValueError(f"results file {path.name!r} was not written by nin_lib.experiments.")
    return results


# ---------------------------------------------------------------------------------------------
# Reading results (lesson 06's tables and plots)


def experiment_rows(results, key):
    """One row per configuration of experiment ``key``: label, parameters and mean ± spread of each metric."""
    experiment = next((e for e in results["experiments"] if e["key"] == key), None)
    if experiment is None:
        known = ", ".join(e["key"] for e in results["experiments"])
        raise ValueError(f"experiment {key!r} is not in these results; choose one of {known}.")
    rows = []
    for name in experiment["configs"]:
        c = results["configs"][name]
        s = c["summary"]
        rows.append({"config": name, "label": c["label"], "parameters": c["parameters"],
                     "runs": s["test_acc"]["n"], "stalled": s["stalled"],
                     **{f"{m}_mean": s[m]["mean"] for m in METRICS},
                     **{f"{m}_std": s[m]["std"] for m in METRICS},
                     "test_acc_min": s["test_acc"]["min"], "test_acc_max": s["test_acc"]["max"]})
    return rows


def per_seed(results, name, metric="test_acc"):
    """Every seed's value of ``metric`` for configuration ``name`` (a list, in seed order)."""
    if name not in results["configs"]:
        raise ValueError(f"configuration {name!r} is not in these results.")
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not known; choose one of {', '.join(METRICS)}.")
    return [r[metric] for r in results["configs"][name]["runs"]]


METRIC_LABELS = {"test_acc": "test accuracy (fraction)", "train_acc": "train accuracy (fraction)",
                 "gap": "train − test accuracy (fraction)", "final_loss": "last epoch's training loss (nats)",
                 "seconds": "seconds per run (s)"}


def format_table(results, key):
    """A text table of experiment ``key``: parameters and mean ± spread (std over seeds) of each metric."""
    rows = experiment_rows(results, key)
    width = max(len(r["config"]) for r in rows)
    lines = [f"{'config':>{width}} {'parameters':>11} {'test acc':>15} {'train acc':>15} {'gap':>15} "
             f"{'stalled':>7} {'s/run':>6}"]
    for r in rows:
        pm = lambda m: f"{r[m + '_mean']:.3f} ± {r[m + '_std']:.3f}"
        lines.append(f"{r['config']:>{width}} {r['parameters']:>11,} {pm('test_acc'):>15} {pm('train_acc'):>15} "
                     f"{pm('gap'):>15} {str(r['stalled']) + '/' + str(r['runs']):>7} {r['seconds_mean']:>6.0f}")
    return "\n".join(lines)


def experiment_panels(results, key, metrics=("test_acc", "train_acc", "gap")):
    """``viz.seed_spread`` arguments for experiment ``key``: one panel per metric, one group per configuration."""
    experiment = next((e for e in results["experiments"] if e["key"] == key), None)
    if experiment is None:
        raise ValueError(f"experiment {key!r} is not in these results.")
    panels = {METRIC_LABELS[m].split(" (")[0]: [(name, per_seed(results, name, m)) for name in experiment["configs"]]
              for m in metrics}
    ylabels = {METRIC_LABELS[m].split(" (")[0]: METRIC_LABELS[m] for m in metrics}
    title = re.sub(r"\s*\([^)]*[\u4e00-\u9fff][^)]*\)", "", experiment["title"])  # plot fonts lack CJK glyphs
    return {"panels": panels, "ylabel": ylabels, "title": title}


def find_results(name, start="."):
    """Path of a committed results file ``benchmarks/<name>`` seen from ``start`` or its parent, or None."""
    for folder in (Path(start), Path(start).resolve().parent):
        path = folder / "benchmarks" / name
        if path.is_file():
            return path
    return None


def compare(results, a, b, metric="test_acc"):
    """How configuration ``b`` differs from ``a`` in ``metric`` over the seeds (lesson 06's verdicts).

    Returns a dict: the means and spreads, ``diff`` (mean of b - mean of a), ``t`` (Welch's t
    statistic; None when both spreads are 0), ``separated`` (every seed of one above every seed of
    the other) and ``verdict``, one sentence that says whether the seeds tell the two apart.
    """
    va, vb = per_seed(results, a, metric), per_seed(results, b, metric)
    sa, sb = summarize(va), summarize(vb)
    if sa["n"] == 0 or sb["n"] == 0:
        raise ValueError(f"configurations {a!r} and {b!r} need finite {metric} values to be compared.")
    diff = sb["mean"] - sa["mean"]
    se = math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"])
    t = diff / se if se > 1e-12 else None
    higher = sb["min"] > sa["max"]
    lower = sb["max"] < sa["min"]
    if higher or lower:
        verdict = (f"{b} is {'higher' if higher else 'lower'} than {a} for every seed "
                   f"({sb['n']} vs {sa['n']} runs)")
    else:
        verdict = f"the seeds of {a} and {b} overlap: no clear difference with {min(sa['n'], sb['n'])} seeds"
    return {"a": a, "b": b, "metric": metric, "a_mean": sa["mean"], "a_std": sa["std"], "b_mean": sb["mean"],
            "b_std": sb["std"], "diff": diff, "t": t, "separated": higher or lower, "verdict": verdict}


def format_comparison(c, digits=3):
    """One line for a ``compare`` result: both means ± spreads, the difference, t and the verdict."""
    t = "n/a" if c["t"] is None else f"{c['t']:+.1f}"
    return (f"{c['metric']}: {c['a']} {c['a_mean']:.{digits}f} ± {c['a_std']:.{digits}f}, "
            f"{c['b']} {c['b_mean']:.{digits}f} ± {c['b_std']:.{digits}f}; difference {c['diff']:+.{digits}f} "
            f"(t = {t}): {c['verdict']}")


# ---------------------------------------------------------------------------------------------
# A tiny live run for the widget


def live_run(*, head="gap", dropout=0.5, num_1x1=2, batch_norm=True, train_size=512, num_epochs=10, seed=0,
             lr=0.1, fmnist=None, width=0.25, test_size=500, fc_hidden=1024, batch_size=32, device="cpu", threads=1):
    """One tiny run of the head/dropout/1×1/BatchNorm experiment (lesson 06's widget): seconds on a CPU.

    Trains the 28-px NiN (or its FC-head or late-reduction twin) with the 'base' recipe (peak
    learning rate ``lr``) on ``train_size`` training images and returns ``train_and_measure``'s
    dict plus the net's parameters. On a CPU the run uses ``threads`` torch threads (one by default:
    a net this small at batch 32 gains nothing from more, and a busy machine slows several threads
    down many times over); torch's setting is restored afterwards. ``threads=None`` keeps it.
    """
    if head not in HEADS:
        raise ValueError(f"head {head!r} is not known; choose one of {', '.join(HEADS)}.")
    if isinstance(train_size, bool) or not isinstance(train_size, int) or not 32 <= train_size <= 60000:
        raise ValueError(f"train_size {train_size!r} is not allowed; use a whole number from 32 to 60000.")
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or not 1 <= num_epochs <= 50:
        raise ValueError(f"num_epochs {num_epochs!r} is not allowed; use a whole number from 1 to 50.")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads {threads!r} is not allowed; use a whole number >= 1 or None.")
    if fmnist is None:
        fmnist = data_mod.load_fashion_mnist()
    batch_size = min(batch_size, train_size)
    p = recipe("base", arch=28, width=width, batch_size=batch_size, num_epochs=num_epochs).with_overrides(
        dropout=dropout, num_1x1=num_1x1, batch_norm=batch_norm, seed=seed, lr=lr)
    before = torch.get_num_threads()
    single = threads is not None and runtime.pick_device(device).type == "cpu"
    if single:
        torch.set_num_threads(threads)
    try:
        r = train_and_measure(head, p, fixed_subsets(fmnist, train_size, test_size), fc_hidden=fc_hidden,
                              device=device)
    finally:
        if single:
            torch.set_num_threads(before)
    r["parameters"] = models.count_parameters(build_net(head, p, fc_hidden=fc_hidden))
    return r
