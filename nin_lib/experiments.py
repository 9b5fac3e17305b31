"""The chapter's claims as small, seeded experiments (lesson 06): configurations, runs, summaries.

One *configuration* is a ``presets.Preset``: a net (GAP head, AlexNet-style FC head, or a head that
reduces to the classes late) and the recipe that trains it; it runs once per seed. One *experiment*
compares a few configurations that differ in one thing. ``run_grid`` runs a grid of configurations
over several seeds and returns a JSON-ready dict with every seed's numbers, their mean and spread,
the machine, the date and the command; ``benchmarks/experiments.py`` is its command line and writes it
as a record (``records``). Every experiment states the book's claims as data (``claims``: which
configuration against which, on which metric, in which direction); ``evidence`` turns them into verdicts
computed from a grid's runs. ``live_run`` is one tiny run for lesson 06's panel (seconds on a CPU).
"""
import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path

from . import checks, models, presets, records, runtime, shapes
from . import data as data_mod

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
    raise checks.refuse(f"recipe {name!r} is not known; choose one of d2l, base, improved")


# name: (label, recipe, changes to the recipe: the net's head and what else differs)
CONFIGS = {
    "base": ("GAP head (NiN), BatchNorm, dropout 0.5, two 1×1", "base", {}),
    "fc-head": ("AlexNet-style FC head instead of GAP", "base", {"head": "fc"}),
    "no-dropout": ("dropout off (0.0)", "base", {"dropout": 0.0}),
    "one-1x1": ("one 1×1 conv per block", "base", {"num_1x1": 1}),
    "no-1x1": ("no 1×1 conv (plain conv blocks)", "base", {"num_1x1": 0}),
    "3x3-mlp": ("the two 1×1 convs of every block replaced by 3×3 convs", "base", {"mlp_kernel": 3}),
    "no-bn": ("no BatchNorm (base recipe otherwise)", "base", {"batch_norm": False}),
    "late-head": ("last block keeps all channels, reduces to 10 only in its last 1×1", "base", {"head": "late"}),
    "d2l": ("the seed's recipe: SGD lr 0.1, no BatchNorm", "d2l", {}),
    "improved": ("the improved preset: + weight decay, label smoothing, flips, no ReLU on the class scores",
                 "improved", {}),
}

# the seed's own 224-px recipes and lesson 06's questions at 224 px (for a GPU): the seed's full-size net; the
# ablations share the 'base' recipe of the 28-px grid and differ from base-224 in one thing each
CONFIGS_224 = {
    "d2l-224": ("the seed's recipe at 224 px (preset d2l)", "d2l", {}),
    "improved-224": ("the improved preset at 224 px", "improved", {}),
    "base-224": ("GAP head (NiN), BatchNorm, dropout 0.5, two 1×1, at 224 px", "base", {}),
    "fc-head-224": ("AlexNet-style FC head instead of GAP, at 224 px", "base", {"head": "fc"}),
    "no-dropout-224": ("dropout off (0.0), at 224 px", "base", {"dropout": 0.0}),
    "one-1x1-224": ("one 1×1 conv per block, at 224 px", "base", {"num_1x1": 1}),
    "no-1x1-224": ("no 1×1 conv (plain conv blocks), at 224 px", "base", {"num_1x1": 0}),
    "no-bn-224": ("no BatchNorm (base recipe otherwise), at 224 px", "base", {"batch_norm": False}),
}


def _claim(config, against, metric, expect, says):
    """One claim an experiment tests: ``config``'s ``metric`` is ``expect`` ('higher' or 'lower') than ``against``'s."""
    return {"config": config, "against": against, "metric": metric, "expect": expect, "says": says}


EXPERIMENTS = [
    {"key": "head", "title": "GAP head vs fully connected head (全局平均池化 vs 全连接层)",
     "question": "Does replacing the fully connected head by a last NiN block and global average pooling "
                 "cut parameters and overfitting?",
     "book": "Fully connected layers have many parameters and overfit easily; NiN's GAP head avoids them.",
     "configs": ["base", "fc-head"],
     "claims": [
         _claim("base", "fc-head", "parameters", "lower", "NiN's GAP head needs fewer parameters than an FC head"),
         _claim("base", "fc-head", "gap", "lower", "the GAP head overfits less (a narrower train − test gap)"),
         _claim("base", "fc-head", "test_acc", "higher", "the GAP head generalises better (a higher test accuracy)")]},
    {"key": "dropout", "title": "dropout on vs off (暂退法)",
     "question": "Does the dropout layer before the last block help test accuracy?",
     "book": "NiN keeps a dropout layer (p = 0.5) before its last block, as AlexNet does in its head.",
     "configs": ["base", "no-dropout"],
     "claims": [
         _claim("base", "no-dropout", "gap", "lower", "dropout reduces overfitting (a narrower train − test gap)"),
         _claim("base", "no-dropout", "test_acc", "higher", "dropout raises test accuracy")]},
    {"key": "num_1x1", "title": "two 1×1 convolutions per block vs one vs none (1×1卷积层)",
     "question": "What do the two 1×1 convolutions of each NiN block buy? (the chapter's exercise)",
     "book": "The 1×1 convolutions act as a per-pixel MLP, adding non-linearity across channels.",
     "configs": ["base", "one-1x1", "no-1x1"],
     "claims": [
         _claim("base", "one-1x1", "test_acc", "higher", "two 1×1 convolutions per block beat one on test accuracy"),
         _claim("base", "no-1x1", "test_acc", "higher", "two 1×1 convolutions per block beat none on test accuracy"),
         _claim("base", "no-1x1", "train_acc", "higher",
                "the per-pixel MLP adds capacity (a higher train accuracy than plain conv blocks)")]},
    {"key": "mlp_kernel", "title": "1×1 convolutions vs 3×3 ones in every block (练习)",
     "question": "What changes when the two 1×1 convolutions of every NiN block become 3×3 convolutions? "
                 "(the d2l-en exercise)",
     "book": "The 1×1 convolutions mix channels at each pixel; 3×3 ones also mix neighbouring pixels, at nine times "
             "the weights.",
     "configs": ["base", "3x3-mlp"],
     "claims": [
         _claim("3x3-mlp", "base", "parameters", "higher",
                "3×3 convolutions in place of the 1×1 ones cost more weights"),
         _claim("3x3-mlp", "base", "macs_per_image", "higher",
                "3×3 convolutions cost more multiply-accumulates per image"),
         _claim("3x3-mlp", "base", "train_acc", "higher",
                "layers that also see neighbouring pixels fit the training images better"),
         _claim("3x3-mlp", "base", "test_acc", "higher", "3×3 convolutions raise test accuracy")]},
    {"key": "batch_norm", "title": "BatchNorm vs none (批量规范化)",
     "question": "Does BatchNorm change how reliably the net trains with the same recipe?",
     "book": "The chapter's NiN has no BatchNorm (it came later); the next chapter introduces it.",
     "configs": ["base", "no-bn"],
     "claims": [
         _claim("base", "no-bn", "test_acc", "higher",
                "with the same recipe, BatchNorm makes the net train (a higher test accuracy)"),
         _claim("base", "no-bn", "final_loss", "lower", "BatchNorm ends with a lower training loss")]},
    {"key": "recipe", "title": "the seed's recipe and what the improved preset changes (训练方法)",
     "question": "How much do the results of the seed's recipe vary across seeds, and what do momentum with "
                 "a one-cycle schedule, BatchNorm and regularisation change, one step at a time?",
     "book": "The chapter trains NiN with plain SGD at lr 0.1 for 10 epochs and reports one run.",
     "configs": ["d2l", "no-bn", "base", "improved"],
     "claims": [
         _claim("no-bn", "d2l", "test_acc", "higher",
                "Nesterov momentum with a one-cycle schedule improves on the seed's plain SGD"),
         _claim("base", "no-bn", "test_acc", "higher", "adding BatchNorm then raises test accuracy"),
         _claim("improved", "base", "test_acc", "higher",
                "weight decay, label smoothing and flips raise test accuracy further"),
         _claim("improved", "base", "gap", "lower",
                "weight decay, label smoothing and flips narrow the train − test gap")],
     "spread": ["d2l"]},
    {"key": "head_reduction", "title": "384×5×5 to 10×5×5 in one step, and a remedy (练习)",
     "question": "Does reducing to the 10 class maps only in the last 1×1 conv (keeping all channels before) "
                 "help, compared with the seed's 3×3 conv straight to 10 channels?",
     "book": "Exercise: what goes wrong when one layer turns 384×5×5 into 10×5×5?",
     "configs": ["base", "late-head"],
     "claims": [
         _claim("late-head", "base", "train_acc", "higher",
                "keeping every channel until the last 1×1 removes a bottleneck (a higher train accuracy)"),
         _claim("late-head", "base", "final_loss", "lower", "the late reduction ends with a lower training loss"),
         _claim("late-head", "base", "test_acc", "higher", "the late reduction raises test accuracy")]},
]


def _at_224(key):
    """The claims of 28-px experiment ``key``, stated for its 224-px twin (every configuration name + '-224')."""
    entry = next(e for e in EXPERIMENTS if e["key"] == key)
    return [{**c, "config": c["config"] + "-224", "against": c["against"] + "-224"} for c in entry["claims"]]


EXPERIMENTS_224 = [
    {"key": "recipe_224", "title": "the seed's recipe at 224 px across seeds, and the improved preset",
     "question": "How much does the seed's own run (224 px, 10 epochs) vary across seeds, and what does the "
                 "improved preset change?",
     "book": "The chapter reports one run of its recipe.",
     "configs": ["d2l-224", "improved-224"],
     "claims": [_claim("improved-224", "d2l-224", "test_acc", "higher",
                       "the improved preset beats the seed's recipe on test accuracy")],
     "spread": ["d2l-224"]},
    {"key": "head_224", "title": "GAP head vs fully connected head at 224 px (全局平均池化 vs 全连接层)",
     "question": "On the seed's full-size net and images, does the GAP head cut parameters and overfitting "
                 "compared with an AlexNet-style fully connected head?",
     "book": "Fully connected layers have many parameters and overfit easily; NiN's GAP head avoids them.",
     "configs": ["base-224", "fc-head-224"], "claims": _at_224("head")},
    {"key": "dropout_224", "title": "dropout on vs off at 224 px (暂退法)",
     "question": "Does the dropout layer before the last block help test accuracy at the book's image size?",
     "book": "NiN keeps a dropout layer (p = 0.5) before its last block, as AlexNet does in its head.",
     "configs": ["base-224", "no-dropout-224"], "claims": _at_224("dropout")},
    {"key": "num_1x1_224", "title": "two 1×1 convolutions per block vs one vs none at 224 px (1×1卷积层)",
     "question": "What do the two 1×1 convolutions of each NiN block buy on the full-size net? (the chapter's "
                 "exercise)",
     "book": "The 1×1 convolutions act as a per-pixel MLP, adding non-linearity across channels.",
     "configs": ["base-224", "one-1x1-224", "no-1x1-224"], "claims": _at_224("num_1x1")},
    {"key": "batch_norm_224", "title": "BatchNorm vs none at 224 px (批量规范化)",
     "question": "Does BatchNorm change how reliably the full-size net trains with the same recipe?",
     "book": "The chapter's NiN has no BatchNorm (it came later); the next chapter introduces it.",
     "configs": ["base-224", "no-bn-224"], "claims": _at_224("batch_norm")},
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
    raise checks.refuse(f"configuration {name!r} is not known; choose from {', '.join(config_names(True))}")


def config_preset(name, settings):
    """The ``Preset`` of one configuration at the grid's sizes (``settings`` is a ``MODES`` entry)."""
    _, recipe_name, changes = _config(name)
    return recipe(recipe_name, arch=settings["arch"], width=settings["width"], batch_size=settings["batch_size"],
                  num_epochs=settings["num_epochs"]).with_overrides(fc_hidden=settings["fc_hidden"], **changes)


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
    return train_and_measure(config_preset(name, settings).with_overrides(seed=seed), subsets, device=device)


def train_and_measure(p, subsets, *, device="cpu", **fit_options):
    """Train the net of preset ``p`` (seeded with ``p.seed``) on ``subsets`` and measure it.

    Returns seed, test_acc, train_acc, gap (train - test), final_loss, loss_per_epoch, seconds,
    stalled (test accuracy still near chance) and stopped (why ``fit`` stopped early, or None).
    Train accuracy is measured after training in eval mode on the training images (no dropout,
    no flips), so the gap between train and test accuracy is the overfitting. ``fit_options`` go to
    ``fit`` (a stop event, callbacks).
    """
    (train_X, train_y), (test_X, test_y) = subsets
    start = time.perf_counter()
    run = presets.build_run(p, data=data_mod.FashionMNIST(train_X, train_y, test_X, test_y), device=device)
    history = run.fit(test_iter=None, progress=False, verbose=False, **fit_options)
    test_acc = run.evaluate()
    train_acc = run.evaluate(presets.eval_batches(p, train_X, train_y, run.device))
    losses = [e["loss"] for e in history.epochs]
    return {"seed": p.seed, "test_acc": test_acc, "train_acc": train_acc, "gap": train_acc - test_acc,
            "final_loss": losses[-1] if losses and math.isfinite(losses[-1]) else None,
            "loss_per_epoch": [round(x, 5) if math.isfinite(x) else None for x in losses],
            "seconds": time.perf_counter() - start, "stalled": test_acc < STALLED_BELOW,
            "stopped": history.reason, "epochs_trained": history.trained()}


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


def grid_settings(mode, **overrides):
    """The sizes of a grid (``MODES[mode]``) with some changed (num_epochs, train_size, width, ...)."""
    settings = dict(MODES[checks.choice("mode", mode, tuple(MODES))])
    limits = {"train_size": 60000, "test_size": 10000, "num_epochs": 1000, "batch_size": 60000, "fc_hidden": 65536}
    for key, value in overrides.items():
        checks.choice("grid setting", key, tuple(settings))
        if value is None:
            continue
        if key in limits:
            checks.whole_number(key, value, 1, limits[key])
        settings[key] = value
    if settings["train_size"] is not None and settings["batch_size"] > settings["train_size"]:
        settings["batch_size"] = settings["train_size"]
    return settings


def _entry(name, settings, device):
    label, recipe_name, _ = _config(name)
    p = config_preset(name, settings)
    net = p.build_net(meta=True)
    return {"label": label, "recipe": recipe_name, "head": p.head, "preset": p.to_dict(),
            "image_size": p.image_size(), "train_size": settings["train_size"] or 60000,
            "test_size": settings["test_size"] or 10000,
            "fc_hidden": settings["fc_hidden"] if p.head == "fc" else None,
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
        raise checks.refuse("run_grid needs at least one configuration name")
    for name in names:
        _config(name)
    if not seeds or any(not checks.is_whole(s) or s < 0 for s in seeds):
        raise checks.refuse(f"seeds {seeds!r} are not allowed; give one or more whole numbers >= 0")
    device = runtime.pick_device(device)
    if fmnist is None:
        fmnist = data_mod.load_fashion_mnist()
    if any(n in CONFIGS_224 for n in names) and settings_224 is None:
        settings_224 = dict(MODES["full"])
    started = time.perf_counter()
    results = {"format": FORMAT, "mode": mode, "complete": False,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": command, "machine": runtime.machine(device), "device": runtime.describe_device(device),
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
    results["machine"]["load_average_at_end"] = runtime.machine().get("load_average")
    if out is not None:
        save_results(results, out)
    return results


def save_results(results, path):
    """Write results as JSON atomically; a file in a records folder is also listed in its SHA256SUMS."""
    path = Path(path)
    return records.write(results, path.stem, path.parent)


def load_results(path):
    """Read a results file written by ``run_grid``; a missing or foreign file is a ValueError."""
    path = Path(path)
    if not path.is_file():
        raise checks.refuse(f"results file {path.name!r} does not exist; run benchmarks/experiments.py to make it")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise checks.refuse(f"results file {path.name!r} is not valid JSON; run benchmarks/experiments.py again") from None
    if not isinstance(results, dict) or results.get("format") != FORMAT:
        raise checks.refuse(f"results file {path.name!r} was not written by nin_lib.experiments")
    return results


def recorded(name="experiments-cpu"):
    """The recorded grid ``name`` shipped with the package (its hash checked), or None if there is none."""
    return records.load(name, format=FORMAT) if records.find(name) is not None else None


# ---------------------------------------------------------------------------------------------
# A tiny live run for the widget


def live_preset(*, head="gap", dropout=0.5, num_1x1=2, batch_norm=True, train_size=512, num_epochs=10, seed=0,
                lr=0.1, width=0.25, fc_hidden=1024, batch_size=32, threads=1):
    """The checked ``Preset`` of one live run (``live_run``): the 'base' recipe on the 28-px NiN with these values."""
    checks.choice("head", head, models.HEADS)
    checks.whole_number("train_size", train_size, 32, 60000)
    checks.whole_number("num_epochs", num_epochs, 1, 50)
    checks.whole_number("threads", threads, 1, none=True)
    p = recipe("base", arch=28, width=width, batch_size=min(batch_size, train_size), num_epochs=num_epochs)
    return p.with_overrides(head=head, fc_hidden=fc_hidden, dropout=dropout, num_1x1=num_1x1, batch_norm=batch_norm,
                            seed=seed, lr=lr, threads=threads)


def live_run(*, fmnist=None, train_size=512, test_size=500, device="cpu", stop=None, callbacks=(), **settings):
    """One tiny run of the head/dropout/1×1/BatchNorm experiment (lesson 06's panel): seconds on a CPU.

    Trains the 28-px NiN (or its FC-head or late-reduction twin) of ``live_preset(**settings)`` (the 'base'
    recipe with peak learning rate ``lr``) on ``train_size`` training images and returns ``train_and_measure``'s
    dict plus the net's parameters. On a CPU the run uses one torch thread by default (a net this small at
    batch 32 gains nothing from more); ``threads=None`` follows the CPU quota. ``stop`` and ``callbacks`` go to
    ``fit``: a run stopped early is measured as far as it got.
    """
    p = live_preset(train_size=train_size, **settings)
    if fmnist is None:
        fmnist = data_mod.load_fashion_mnist()
    r = train_and_measure(p, fixed_subsets(fmnist, train_size, test_size), device=device, stop=stop,
                          callbacks=callbacks)
    r["parameters"] = models.count_parameters(p.build_net(meta=True))
    return r
