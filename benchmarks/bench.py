"""The d2l-style input pipeline and loop against nin_lib's ``fit``, same recipe (lesson 05's speed figures).

    python benchmarks/bench.py pipeline --steps 20 --device cpu --json out.json
    python benchmarks/bench.py preset --preset improved --seeds 0 1 2 --device cuda --json out.json
    python benchmarks/bench.py --steps 20                   (the mode defaults to pipeline)

pipeline: in one process on one machine, time end to end (data loading included) the seed's way
    (torchvision FashionMNIST + Resize(224) + ToTensor + DataLoader with 4 workers, fp32, plain SGD
    loop as d2l's train_ch6, which reads the loss and accuracy of every batch) against ``fit`` on the
    same recipe (the seed's net, Xavier init, SGD lr 0.1, batch 128, 224 px; data on the device,
    resized there; bf16 autocast and channels_last on CUDA) and against the chapter's own cells served by
    ``nin_lib.d2l``. ``--steps N`` trains N batches each (so it fits a short GPU session); without it,
    ``--epochs`` full epochs with test accuracy. Prints images/s for each and the ratios.
preset: train a named preset (``d2l``, ``improved``, ``quick``) for its full epochs over several
    seeds with ``fit``, and report the time and the test accuracy (mean and spread).
grid: one preset with several sets of overrides (tuning; a JSON list of dicts).
profile: torch.profiler over a few training steps of a preset: which kernels take the time.
Bad arguments: exit status 2 and one sentence.
"""
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from nin_lib import checks, cli, d2l, data, models, presets, runtime, train, viz
from nin_lib.runtime import machine, sync as _sync


def _warm_device(device):
    """Create the CUDA context before any timer starts (neither side pays for it)."""
    if device.type == "cuda":
        torch.zeros(1, device=device).add_(1)
        _sync(device)


# ---------------------------------------------------------------------------------------------
# The d2l-style pipeline: torchvision dataset, PIL Resize + ToTensor, DataLoader workers, plain loop

def _accuracy(y_hat, y):
    """d2l.accuracy: the number of correct predictions, as a Python float (it waits for the device)."""
    return float((y_hat.argmax(dim=1).type(y.dtype) == y).sum())


def d2l_style(device, *, steps=None, epochs=1, batch_size=128, resize=224, lr=0.1, workers=4, warmup=10, seed=0):
    """Time the book's pipeline: ``load_data_fashion_mnist`` + ``train_ch6``'s loop (fp32, no AMP).

    Returns a dict: seconds (end to end, loaders and worker start included), images, images_per_s,
    steady_images_per_s (after ``warmup`` batches), test_acc (full epochs only).
    """
    runtime.seed_everything(seed)
    data.torchvision_root()  # one-time extraction of the IDX files, outside the timer
    _warm_device(device)
    start = time.perf_counter()
    train_iter, test_iter = data.d2l_style_loaders(batch_size, resize=resize, num_workers=workers)
    net = models.init_xavier(models.nin()).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    images, step, steady_start, steady_images = 0, 0, None, 0
    metric = [0.0, 0.0, 0]
    done = False
    test_acc = None
    for epoch in range(epochs if steps is None else math.ceil(steps / len(train_iter))):
        net.train()
        for X, y in train_iter:
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)
            l.backward()
            optimizer.step()
            with torch.no_grad():  # train_ch6: metric.add(l * X.shape[0], d2l.accuracy(y_hat, y), X.shape[0])
                metric[0] += float(l * X.shape[0])
                metric[1] += _accuracy(y_hat, y)
                metric[2] += X.shape[0]
            images += X.shape[0]
            step += 1
            if step == warmup:
                _sync(device)
                steady_start, steady_images = time.perf_counter(), images
            if steps is not None and step >= steps:
                done = True
                break
        if steps is None:
            test_acc = _d2l_evaluate(net, test_iter, device)
        if done:
            break
    _sync(device)
    end = time.perf_counter()
    seconds = end - start
    result = {"name": "d2l-style", "seconds": seconds, "images": images, "steps": step,
              "images_per_s": images / seconds, "train_loss": metric[0] / max(metric[2], 1),
              "train_acc": metric[1] / max(metric[2], 1), "test_acc": test_acc,
              "workers": workers, "amp": False, "channels_last": False}
    if steady_start is not None and images > steady_images:
        result["steady_images_per_s"] = (images - steady_images) / (end - steady_start)
    return result


def _d2l_evaluate(net, data_iter, device):
    """d2l's evaluate_accuracy_gpu."""
    net.eval()
    correct, count = 0.0, 0
    with torch.no_grad():
        for X, y in data_iter:
            X, y = X.to(device), y.to(device)
            correct += _accuracy(net(X), y)
            count += y.numel()
    return correct / count


# ---------------------------------------------------------------------------------------------
# nin_lib's fit on the same recipe

class _SteadyTimer(train.Callback):
    """Notes the time after ``warmup`` batches (waiting for the device once)."""

    def __init__(self, device, warmup):
        self.device, self.warmup = device, warmup
        self.start, self.images = None, 0

    def on_batch_end(self, run):
        if run.global_step == self.warmup:
            _sync(self.device)
            self.start, self.images = time.perf_counter(), run.images


def nin_fit(device, *, steps=None, epochs=1, batch_size=128, resize=224, lr=0.1, warmup=10, seed=0,
            compile=False, name="fit"):
    """Time ``fit`` on the seed's recipe end to end: reading the files, batches on the device, training."""
    runtime.seed_everything(seed)
    _warm_device(device)
    start = time.perf_counter()
    fmnist = data.load_fashion_mnist()
    preset = presets.get_preset("d2l", batch_size=batch_size, resize=resize, lr=lr, seed=seed,
                                num_epochs=epochs if steps is None else 1, compile=compile)
    if steps is not None:
        batches = math.ceil(len(fmnist.train_labels) / batch_size)
        preset = preset.with_overrides(num_epochs=max(1, math.ceil(steps / batches)))
    run = presets.build_run(preset, data=fmnist, device=device)
    timer = _SteadyTimer(device, warmup)
    callbacks = [train.ProgressBar(False), timer] + ([train.MaxSteps(steps)] if steps is not None else [])
    history = run.fit(callbacks=callbacks, test=steps is None)
    _sync(device)
    end = time.perf_counter()
    images = sum(e["images"] for e in history.epochs)
    result = {"name": name, "seconds": end - start, "images": images, "steps": sum(
        math.ceil(e["images"] / batch_size) for e in history.epochs), "images_per_s": images / (end - start),
              "train_loss": history.last["loss"] if history.last else None,
              "train_acc": history.last["train_acc"] if history.last else None,
              "test_acc": history.final_test_acc, "amp": history.meta.get("amp"),
              "channels_last": history.meta.get("channels_last"), "compile": compile,
              "epochs": [{k: e.get(k) for k in ("epoch", "loss", "train_acc", "test_acc", "seconds", "images_per_s")}
                         for e in history.epochs]}
    if timer.start is not None and images > timer.images:
        result["steady_images_per_s"] = (images - timer.images) / (end - timer.start)
    return result


def book_path(device, *, steps=None, epochs=1, batch_size=128, resize=224, lr=0.1, warmup=10, seed=0):
    """Time the chapter's own cells served by ``nin_lib.d2l`` (lesson 00's path) end to end, reading the data
    files included: ``load_data_fashion_mnist(128, resize=224)`` then ``train_ch6(net, ..., lr, device)``."""
    runtime.seed_everything(seed)
    _warm_device(device)
    start = time.perf_counter()
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size, resize=resize)
    if steps is not None:  # fit skips the test pass in --steps mode; the book's train_ch6 always evaluates: one batch
        test_iter = test_iter.subset(batch_size)
        epochs = math.ceil(steps / len(train_iter))
    out = io.StringIO()
    history = d2l.fit_ch6(models.nin(), train_iter, test_iter, epochs, lr, device, shrink=False,
                          curves=viz.LiveCurves(show=False), max_steps=steps, file=out)
    seconds = time.perf_counter() - start
    last = history.last or {}
    return {"name": "nin_lib.d2l", "seconds": seconds, "images": history.images,
            "images_per_s": history.images / seconds, "train_images_per_s": history.images_per_s,
            "train_loss": last.get("loss"), "train_acc": last.get("train_acc"), "test_acc": history.final_test_acc,
            "lines": out.getvalue().splitlines()}


def pipeline(args, device):
    """Mode 'pipeline': the d2l-style pipeline against fit, images/s and the ratio."""
    common = dict(steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, resize=args.resize,
                  lr=args.lr, warmup=args.warmup, seed=args.seed)
    results = []
    if not args.skip_d2l:
        _say(f"d2l-style pipeline ({args.workers} workers) ...")
        results.append(d2l_style(device, workers=args.workers, **common))
        _say(_line(results[-1]))
    _say("nin_lib fit ...")
    results.append(nin_fit(device, **common))
    _say(_line(results[-1]))
    _say("nin_lib.d2l (the chapter's load_data_fashion_mnist + train_ch6 on fit) ...")
    results.append(book_path(device, **common))
    _say(_line(results[-1]))
    if args.compile:
        _say("nin_lib fit with torch.compile ...")
        results.append(nin_fit(device, compile=True, name="fit+compile", **common))
        _say(_line(results[-1]))
    out = {"mode": "pipeline", "device": runtime.describe_device(device), "machine": machine(device),
           "recipe": {"net": "models.nin() (the seed's NiN), Xavier-uniform init", "optimizer": "SGD",
                      "lr": args.lr, "batch_size": args.batch_size, "resize": args.resize},
           "steps": args.steps, "epochs": None if args.steps else args.epochs, "warmup": args.warmup,
           "results": results}
    base = next((r for r in results if r["name"] == "d2l-style"), None)
    if base is not None:
        for r in results:
            if r is not base:
                r["ratio"] = r["images_per_s"] / base["images_per_s"]
                if "steady_images_per_s" in r and "steady_images_per_s" in base:
                    r["steady_ratio"] = r["steady_images_per_s"] / base["steady_images_per_s"]
    return out


def _line(r):
    steady = f", steady {r['steady_images_per_s']:,.0f} images/s" if "steady_images_per_s" in r else ""
    test = f", test acc {r['test_acc']:.3f}" if r.get("test_acc") is not None else ""
    return (f"  {r['name']}: {r['images']:,} images in {r['seconds']:.1f} s end to end = "
            f"{r['images_per_s']:,.0f} images/s{steady}{test}")


# ---------------------------------------------------------------------------------------------
# Presets over several seeds

def _timed_run(preset, fmnist, device):
    """Build and train one preset run; its history and wall seconds (building the run included)."""
    _warm_device(device)
    start = time.perf_counter()
    history = presets.build_run(preset, data=fmnist, device=device).fit(callbacks=[train.ProgressBar(False)])
    _sync(device)
    return history, time.perf_counter() - start


def preset_runs(args, device):
    """Mode 'preset': full runs of one preset over several seeds; test accuracy mean and spread."""
    fmnist = data.load_fashion_mnist()
    runs = []
    for seed in args.seeds:
        overrides = {"seed": seed, "compile": args.compile or None, "num_epochs": args.preset_epochs,
                     "subset": args.subset, "test_subset": args.test_subset}
        preset = presets.get_preset(args.preset, **{k: v for k, v in overrides.items() if v is not None})
        history, seconds = _timed_run(preset, fmnist, device)
        runs.append({"seed": seed, "seconds": seconds, "test_acc": history.final_test_acc,
                     "train_acc": history.last["train_acc"] if history.last else None,
                     "stopped": history.stopped, "reason": history.reason,
                     "images_per_s": history.images_per_s,
                     "epochs": [{k: e.get(k) for k in ("epoch", "loss", "train_acc", "test_acc", "seconds",
                                                       "images_per_s")} for e in history.epochs]})
        _say(f"  {preset.name} seed {seed}: test acc {_fmt(history.final_test_acc)} after "
             f"{history.completed_epochs} epochs, {seconds:.1f} s" + (f" ({history.reason})" if history.reason else ""))
    accs = [r["test_acc"] for r in runs if r["test_acc"] is not None]
    summary = {"test_acc_mean": statistics.mean(accs) if accs else None,
               "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
               "test_acc_min": min(accs) if accs else None, "test_acc_max": max(accs) if accs else None,
               "seconds_mean": statistics.mean(r["seconds"] for r in runs)}
    _say(f"{args.preset}: test acc mean {_fmt(summary['test_acc_mean'])} ± {summary['test_acc_std']:.3f} "
         f"over {len(accs)} seed(s), {summary['seconds_mean']:.1f} s per run")
    return {"mode": "preset", "preset": presets.get_preset(args.preset).to_dict(), "device": runtime.describe_device(device),
            "machine": machine(device), "runs": runs, "summary": summary}


def grid_runs(args, device):
    """Mode 'grid': one preset with several sets of overrides (tuning); test accuracy of each."""
    try:
        configs = json.loads(Path(args.configs).read_text() if Path(args.configs).is_file() else args.configs)
    except (OSError, ValueError):
        raise checks.refuse(f"--configs {args.configs!r} is neither a JSON list of dicts nor a file holding one") from None
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise checks.refuse("--configs must be a JSON list of dicts of preset overrides, e.g. '[{\"width\": 0.25}]'")
    fmnist = data.load_fashion_mnist()
    rows = []
    for config in configs:
        for seed in args.seeds:
            preset = presets.get_preset(args.preset, **{"seed": seed, **config})
            history, seconds = _timed_run(preset, fmnist, device)
            images = sum(e["images"] for e in history.epochs)
            rows.append({"config": config, "seed": seed, "test_acc": history.final_test_acc, "seconds": seconds,
                         "train_images": images, "test_accs": history.test_acc, "reason": history.reason})
            _say(f"  {json.dumps(config)} seed {seed}: test acc {_fmt(history.final_test_acc)} "
                 f"({images:,} training images, {seconds:.1f} s)")
    return {"mode": "grid", "preset": args.preset, "device": runtime.describe_device(device),
            "machine": machine(device), "runs": rows}


def profile_run(args, device):
    """Mode 'profile': torch.profiler over a few training steps of a preset; the kernels that take the time."""
    from torch.profiler import ProfilerActivity, profile

    fmnist = data.load_fashion_mnist()
    run = presets.build_run(args.preset, data=fmnist, device=device, seed=args.seed)
    run.fit(callbacks=[train.ProgressBar(False), train.MaxSteps(args.warmup)], test=False)  # autotuning, caches
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run.fit(callbacks=[train.ProgressBar(False), train.MaxSteps(args.steps)], test=False)
        _sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60)
    _say(table)
    return {"mode": "profile", "preset": args.preset, "device": runtime.describe_device(device),
            "machine": machine(device), "steps": args.steps, "table": table}


def _fmt(x):
    return "n/a" if x is None else f"{x:.4f}"


def _say(text):
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# Command line

_positive = checks.whole_number_text(1)
_nonneg = checks.whole_number_text(0)


def build_parser():
    """The benchmark's command line (bad arguments raise ``cli.UsageError``)."""
    parser = cli.Parser(prog="benchmarks/bench.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", parser_class=cli.Parser, required=True)
    p = sub.add_parser("pipeline", help="d2l-style pipeline against fit, same recipe")
    p.add_argument("--steps", type=_positive, default=None, help="training batches per side (default: full epochs)")
    p.add_argument("--epochs", type=_positive, default=1, help="full epochs per side when --steps is not given")
    p.add_argument("--workers", type=_nonneg, default=4, help="DataLoader workers of the d2l-style side (default 4)")
    p.add_argument("--warmup", type=_nonneg, default=10, help="batches before the steady-state timer starts")
    p.add_argument("--batch-size", type=_positive, default=128)
    p.add_argument("--resize", type=_positive, default=224)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--compile", action="store_true", help="also time fit with torch.compile")
    p.add_argument("--skip-d2l", action="store_true", help="time fit only")
    p = sub.add_parser("preset", help="a preset's full runs over several seeds")
    p.add_argument("--preset", default="improved")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset-epochs", type=_positive, default=None, help="epochs (default: the preset's)")
    p.add_argument("--subset", type=_positive, default=None, help="train on this many images (smoke tests)")
    p.add_argument("--test-subset", type=_positive, default=None)
    p.add_argument("--compile", action="store_true")
    p = sub.add_parser("grid", help="one preset with several sets of overrides (tuning)")
    p.add_argument("--preset", default="quick")
    p.add_argument("--configs", required=True, help="JSON list of override dicts, or a file holding one")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p = sub.add_parser("profile", help="torch.profiler over a few training steps of a preset")
    p.add_argument("--preset", default="d2l")
    p.add_argument("--steps", type=_positive, default=20)
    p.add_argument("--warmup", type=_positive, default=30)
    p.add_argument("--rows", type=_positive, default=25)
    for p in sub.choices.values():
        p.add_argument("--device", default="auto", choices=list(runtime.DEVICES))
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--json", default=None, help="write the results to this JSON file")
    return parser


def main(argv):
    """Run the benchmark; returns the exit status.

    Without a mode, ``pipeline`` is meant: ``bench --steps 200`` is ``bench pipeline --steps 200``.
    """
    argv = list(argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "pipeline")
    args = build_parser().parse_args(argv)
    device = runtime.pick_device(args.device)
    _say(f"bench {args.mode} on {runtime.describe_device(device)}, torch {torch.__version__}")
    modes = {"pipeline": pipeline, "preset": preset_runs, "grid": grid_runs, "profile": profile_run}
    out = modes[args.mode](args, device)
    if args.mode == "pipeline":
        for r in out["results"]:
            if "ratio" in r:
                steady = f" (steady state {r['steady_ratio']:.2f}×)" if "steady_ratio" in r else ""
                _say(f"{r['name']} / d2l-style = {r['ratio']:.2f}× images/s end to end{steady}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")
        _say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
