"""The chapter's claims as seeded experiments (lesson 06): a configuration is a ``Preset`` run once per seed; an
experiment compares configurations that differ in one thing and states the book's claims as data (``verdicts``)."""
import math
import time
from datetime import datetime, timezone
from pathlib import Path

from . import checks, models, presets, records, runtime, shapes, train
from . import data as data_mod

FORMAT = "nin-experiments-1"
METRICS = ("test_acc", "train_acc", "gap", "final_loss", "seconds")
STALLED_BELOW = 0.2  # a run whose test accuracy stays under this never left chance level (0.1)
DATA_SEED = 0  # the training and test subsets are the same for every configuration and seed

RECIPES = {"d2l": ("d2l", {}), "improved": ("improved", {}),  # name: (the preset it starts from, what it changes)
           "base": ("d2l", dict(batch_norm=True, momentum=0.9, nesterov=True, schedule="onecycle"))}


def recipe(name, *, arch=28, width=0.25, batch_size=128, num_epochs=10):
    """The Preset of recipe 'd2l' (the seed's), 'base' (+ BatchNorm, Nesterov, one-cycle; ablations) or 'improved'."""
    preset, changes = RECIPES[checks.choice("recipe", name, tuple(RECIPES))]
    return presets.get_preset(preset, arch=arch, width=width, batch_size=batch_size, num_epochs=num_epochs,
                              resize=None if arch == 28 else 224, **changes)


CONFIGS = {  # name: (label, recipe, changes to the recipe: the net's head and what else differs)
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
                 "improved", {})}

# the 28-px configurations of the same names on the seed's 224-px net (for a GPU)
CONFIGS_224 = {f"{name}-224": (f"{CONFIGS[name][0]}, at 224 px", *CONFIGS[name][1:])
               for name in ("d2l", "improved", "base", "fc-head", "no-dropout", "one-1x1", "no-1x1", "no-bn")}


def _claim(config, against, metric, expect, says):
    """One claim an experiment tests: ``config``'s ``metric`` is ``expect`` ('higher' or 'lower') than ``against``'s."""
    return {"config": config, "against": against, "metric": metric, "expect": expect, "says": says}


EXPERIMENTS = [
    {"key": "head", "title": "GAP head vs fully connected head (全局平均池化 vs 全连接层)",
     "question": "Does replacing the fully connected head by a last NiN block and global average pooling "
                 "cut parameters and overfitting?",
     "book": "Fully connected layers have many parameters and overfit easily; NiN's GAP head avoids them.",
     "configs": ["base", "fc-head"], "claims": [
         _claim("base", "fc-head", "parameters", "lower", "NiN's GAP head needs fewer parameters than an FC head"),
         _claim("base", "fc-head", "gap", "lower", "the GAP head overfits less (a narrower train − test gap)"),
         _claim("base", "fc-head", "test_acc", "higher", "the GAP head generalises better (a higher test accuracy)")]},
    {"key": "dropout", "title": "dropout on vs off (暂退法)",
     "question": "Does the dropout layer before the last block help test accuracy?",
     "book": "NiN keeps a dropout layer (p = 0.5) before its last block, as AlexNet does in its head.",
     "configs": ["base", "no-dropout"], "claims": [
         _claim("base", "no-dropout", "gap", "lower", "dropout reduces overfitting (a narrower train − test gap)"),
         _claim("base", "no-dropout", "test_acc", "higher", "dropout raises test accuracy")]},
    {"key": "num_1x1", "title": "two 1×1 convolutions per block vs one vs none (1×1卷积层)",
     "question": "What do the two 1×1 convolutions of each NiN block buy? (the chapter's exercise)",
     "book": "The 1×1 convolutions act as a per-pixel MLP, adding non-linearity across channels.",
     "configs": ["base", "one-1x1", "no-1x1"], "claims": [
         _claim("base", "one-1x1", "test_acc", "higher", "two 1×1 convolutions per block beat one on test accuracy"),
         _claim("base", "no-1x1", "test_acc", "higher", "two 1×1 convolutions per block beat none on test accuracy"),
         _claim("base", "no-1x1", "train_acc", "higher",
                "the per-pixel MLP adds capacity (a higher train accuracy than plain conv blocks)")]},
    {"key": "mlp_kernel", "title": "1×1 convolutions vs 3×3 ones in every block (练习)",
     "question": "What changes when the two 1×1 convolutions of every NiN block become 3×3 convolutions? "
                 "(the d2l-en exercise)",
     "book": "The 1×1 convolutions mix channels at each pixel; 3×3 ones also mix neighbouring pixels, at nine times "
             "the weights.",
     "configs": ["base", "3x3-mlp"], "claims": [
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
     "configs": ["base", "no-bn"], "claims": [
         _claim("base", "no-bn", "test_acc", "higher",
                "with the same recipe, BatchNorm makes the net train (a higher test accuracy)"),
         _claim("base", "no-bn", "final_loss", "lower", "BatchNorm ends with a lower training loss")]},
    {"key": "recipe", "title": "the seed's recipe and what the improved preset changes (训练方法)",
     "question": "How much do the results of the seed's recipe vary across seeds, and what do momentum with "
                 "a one-cycle schedule, BatchNorm and regularisation change, one step at a time?",
     "book": "The chapter trains NiN with plain SGD at lr 0.1 for 10 epochs and reports one run.",
     "configs": ["d2l", "no-bn", "base", "improved"], "spread": ["d2l"], "claims": [
         _claim("no-bn", "d2l", "test_acc", "higher",
                "Nesterov momentum with a one-cycle schedule improves on the seed's plain SGD"),
         _claim("base", "no-bn", "test_acc", "higher", "adding BatchNorm then raises test accuracy"),
         _claim("improved", "base", "test_acc", "higher",
                "weight decay, label smoothing, flips and no ReLU on the class scores raise test accuracy further"),
         _claim("improved", "base", "gap", "lower",
                "weight decay, label smoothing, flips and no ReLU on the class scores narrow the train − test gap")]},
    {"key": "head_reduction", "title": "384×5×5 to 10×5×5 in one step, and a remedy (练习)",
     "question": "Does reducing to the 10 class maps only in the last 1×1 conv (keeping all channels before) "
                 "help, compared with the seed's 3×3 conv straight to 10 channels?",
     "book": "Exercise: what goes wrong when one layer turns 384×5×5 into 10×5×5?",
     "configs": ["base", "late-head"], "claims": [
         _claim("late-head", "base", "train_acc", "higher",
                "keeping every channel until the last 1×1 removes a bottleneck (a higher train accuracy)"),
         _claim("late-head", "base", "final_loss", "lower", "the late reduction ends with a lower training loss"),
         _claim("late-head", "base", "test_acc", "higher", "the late reduction raises test accuracy")]}]

def _at_224(e):
    """28-px experiment ``e`` repeated on the seed's 224-px net: every configuration name + '-224'."""
    title, cjk, rest = e["title"].partition(" (")
    return {**e, "key": e["key"] + "_224", "title": f"{title} at 224 px{cjk}{rest}",
            "question": "At 224 px, on the seed's full-size net: " + e["question"][0].lower() + e["question"][1:],
            "configs": [c + "-224" for c in e["configs"]],
            "claims": [{**c, "config": c["config"] + "-224", "against": c["against"] + "-224"} for c in e["claims"]]}


EXPERIMENTS_224 = [
    {"key": "recipe_224", "title": "the seed's recipe at 224 px across seeds, and the improved preset",
     "question": "How much does the seed's own run (224 px, 10 epochs) vary across seeds, and what does the "
                 "improved preset change?",
     "book": "The chapter reports one run of its recipe.",
     "configs": ["d2l-224", "improved-224"], "spread": ["d2l-224"], "claims": [
         _claim("improved-224", "d2l-224", "test_acc", "higher",
                "the improved preset beats the seed's recipe on test accuracy")]},
    *(_at_224(e) for e in EXPERIMENTS if e["key"] in ("head", "dropout", "num_1x1", "batch_norm"))]

MODES = {  # grid sizes: tiny (tests and CI), cpu (about 20 minutes on 2 cores), full (a GPU)
    "tiny": dict(arch=28, width=0.1, train_size=96, test_size=96, batch_size=32, num_epochs=1, fc_hidden=64),
    "cpu": dict(arch=28, width=0.25, train_size=2000, test_size=2000, batch_size=64, num_epochs=20, fc_hidden=1024),
    "full": dict(arch=224, width=1.0, train_size=None, test_size=None, batch_size=128, num_epochs=10, fc_hidden=4096)}


def config_names(full=False):
    """The configuration names of the 28-px grid (plus the 224-px ones with ``full``)."""
    return list(CONFIGS) + (list(CONFIGS_224) if full else [])


def _config(name):
    return {**CONFIGS, **CONFIGS_224}[checks.choice("configuration", name, tuple(config_names(True)))]


def config_preset(name, settings):
    """The ``Preset`` of one configuration at the grid's sizes (``settings``: see ``grid_settings``)."""
    _, recipe_name, changes = _config(name)
    return recipe(recipe_name, arch=settings["arch"], width=settings["width"], batch_size=settings["batch_size"],
                  num_epochs=settings["num_epochs"]).with_overrides(fc_hidden=settings["fc_hidden"], **changes)


def grid_settings(mode, **overrides):
    """A grid's sizes (``MODES[mode]``) with some changed (None keeps the mode's); the presets check the rest."""
    settings = dict(MODES[checks.choice("mode", mode, tuple(MODES))])
    for key, value in overrides.items():
        if checks.choice("grid setting", key, tuple(settings)) in ("train_size", "test_size"):
            checks.whole_number(key, value, 1, data_mod.SPLIT_SIZES[key.removesuffix("_size")], none=True)
        if value is not None:
            settings[key] = value
    if settings["train_size"] is not None and settings["batch_size"] > settings["train_size"]:
        settings["batch_size"] = settings["train_size"]
    config_preset("base", settings)  # a preset checks the rest (epochs, batch size, width, fc_hidden)
    return settings


def fixed_subsets(fmnist, train_size, test_size, seed=DATA_SEED):
    """The ``data.FashionMNIST`` every configuration uses: seeded subsets of both splits (a size None keeps all)."""
    i, j = (data_mod.subset_indices(len(labels), size, seed) if size is not None else slice(None)
            for labels, size in ((fmnist.train_labels, train_size), (fmnist.test_labels, test_size)))
    return data_mod.FashionMNIST(fmnist.train_images[i], fmnist.train_labels[i], fmnist.test_images[j],
                                 fmnist.test_labels[j])


def train_and_measure(p, subsets, *, device="cpu", callbacks=()):
    """Train preset ``p`` on ``subsets`` (``fixed_subsets``) and measure it: test and train accuracy (both in eval
    mode, so train - test is the overfitting ``gap``), losses, seconds, stalled (near chance), why it stopped early."""
    start = time.perf_counter()
    run = presets.build_run(p, data=subsets, device=device)
    history = run.fit(callbacks=[train.ProgressBar(False), *callbacks], test=False)
    test_acc = run.evaluate()
    train_acc = run.evaluate(presets.eval_batches(p, subsets.train_images, subsets.train_labels, run.device))
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


def _entry(name, settings, subsets, device):
    label, recipe_name, _ = _config(name)
    p = config_preset(name, settings)
    net = p.build_net("meta")
    return {"label": label, "recipe": recipe_name, "head": p.head, "preset": p.to_dict(), "image_size": p.image_size(),
            "train_size": len(subsets.train_labels), "test_size": len(subsets.test_labels),
            "fc_hidden": settings["fc_hidden"] if p.head == "fc" else None,
            "parameters": models.count_parameters(net), "macs_per_image": shapes.trace(net, p.image_size()).macs,
            "device": runtime.describe_device(device), "runs": [], "summary": None}


def run_grid(names, seeds, settings, *, fmnist=None, device="cpu", settings_224=None, out=None, command=None,
             mode=None, log=print):
    """Run every configuration in ``names`` once per seed (224-px ones at ``settings_224``) and return the results
    (a JSON-ready dict). With ``out`` the file is rewritten after every run (``complete`` False until the end)."""
    seeds = [checks.whole_number("seed", seed, 0) for seed in seeds]
    device = runtime.pick_device(device)
    fmnist = fmnist if fmnist is not None else data_mod.load_fashion_mnist()
    settings_224 = settings_224 or dict(MODES["full"])
    sizes = {name: settings_224 if name in CONFIGS_224 else settings for name in names}
    subsets = {name: fixed_subsets(fmnist, s["train_size"], s["test_size"]) for name, s in sizes.items()}
    started = time.perf_counter()
    results = {"format": FORMAT, "mode": mode, "complete": False,
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": command, "machine": runtime.machine(device), "device": runtime.describe_device(device),
               "seeds": seeds, "settings": settings if any(n in CONFIGS for n in names) else None,
               "settings_224": settings_224 if any(n in CONFIGS_224 for n in names) else None,
               "stalled_below": STALLED_BELOW, "data_seed": DATA_SEED,
               "experiments": [e for e in EXPERIMENTS + EXPERIMENTS_224 if all(c in names for c in e["configs"])],
               "configs": {name: _entry(name, sizes[name], subsets[name], device) for name in names}, "seconds": 0.0}
    for name in names:
        entry = results["configs"][name]
        for seed in seeds:
            r = train_and_measure(config_preset(name, sizes[name]).with_overrides(seed=seed), subsets[name],
                                  device=device)
            entry["runs"].append(r)
            entry["summary"] = {m: summarize([r[m] for r in entry["runs"]]) for m in METRICS}
            entry["summary"]["stalled"] = sum(bool(r["stalled"]) for r in entry["runs"])  # runs left at chance
            results["seconds"] = time.perf_counter() - started
            if log:
                log(f"{name:>13} seed {seed}: test acc {r['test_acc']:.3f}, train acc {r['train_acc']:.3f}, "
                    f"{r['seconds']:.1f} s")
            if out is not None:
                records.write(results, Path(out).stem, Path(out).parent)
    results.update(complete=True, finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    results["machine"]["load_average_at_end"] = runtime.machine().get("load_average")
    if out is not None:
        records.write(results, Path(out).stem, Path(out).parent)
    return results


def load_results(path):
    """Read a results file written by ``run_grid`` (``records.load``); a missing or foreign file is one sentence."""
    return records.load(Path(path).stem, format=FORMAT, folder=Path(path).parent)


def recorded(name="experiments-cpu"):
    """The recorded grid ``name`` shipped with the package, or None if there is none."""
    return records.load(name, format=FORMAT) if records.locate(name) is not None else None


def live_preset(*, head="gap", dropout=0.5, num_1x1=2, batch_norm=True, train_size=512, num_epochs=10, seed=0,
                lr=0.1, width=0.25, fc_hidden=1024, batch_size=32, threads=1):
    """The ``Preset`` of one live run: the 'base' recipe on the 28-px NiN with these values (which it checks)."""
    checks.whole_number("train_size", train_size, 1, data_mod.SPLIT_SIZES["train"])
    p = recipe("base", arch=28, width=width, batch_size=min(batch_size, train_size), num_epochs=num_epochs)
    return p.with_overrides(head=head, fc_hidden=fc_hidden, dropout=dropout, num_1x1=num_1x1, batch_norm=batch_norm,
                            seed=seed, lr=lr, threads=threads)


def live_run(*, fmnist=None, train_size=512, test_size=500, device="cpu", callbacks=(), **settings):
    """Lesson 06's panel: one tiny run of ``live_preset(**settings)`` (seconds on a CPU), measured as far as it got
    (``callbacks`` such as ``train.Stop`` go to ``fit``): ``train_and_measure``'s dict plus the net's parameters."""
    p = live_preset(train_size=train_size, **settings)
    fmnist = fmnist if fmnist is not None else data_mod.load_fashion_mnist()
    r = train_and_measure(p, fixed_subsets(fmnist, train_size, test_size), device=device, callbacks=callbacks)
    return {**r, "parameters": models.count_parameters(p.build_net("meta"))}
