"""Command line: ``python -m nin_lib trace | train | bench`` (see ``--help``).

Bad arguments end with exit status 2 and one sentence on standard error, never a traceback.
"""
import sys

from .cli import Parser as _Parser, UsageError, number, whole_number


_int = whole_number()
_float = number


def cmd_trace(args):
    from . import models, shapes
    net = models.get_model(args.model)
    size = args.input_size if args.input_size is not None else models.model_input_size(args.model)
    if args.table:
        print(shapes.trace(net, size, depth=args.depth))
    else:
        shapes.print_seed_table(net, size)
    return 0


def build_parser():
    from . import models
    parser = _Parser(prog="python -m nin_lib", description="NiN lessons: trace, train and benchmark from the shell.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("trace", help="print a net's layer-by-layer output shapes (the seed's table)")
    p.add_argument("--model", default="d2l", choices=list(models.MODELS), help="which net (default: d2l, the seed's NiN)")
    p.add_argument("--input-size", type=_int, default=None, help="input height and width in pixels (default: the model's own)")
    p.add_argument("--table", action="store_true", help="print the richer table (shape, parameters, MACs, receptive field)")
    p.add_argument("--depth", default="top", choices=["top", "leaf"], help="table rows per top-level layer or per leaf layer")
    p.set_defaults(func=cmd_trace)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


# Other modules add their subcommands here (train, bench), each a function taking the subparsers.
_EXTRA_COMMANDS = []


# --- train and bench (lesson 05) ---------------------------------------------------------------

def cmd_train(args):
    """Train a preset, print one line per epoch and a summary, write history.json and curves.png."""
    import matplotlib
    matplotlib.use("Agg")
    from pathlib import Path
    from . import data, presets, runtime, train, viz

    overrides = {k: v for k, v in dict(num_epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                                        resize=args.resize, seed=args.seed, subset=args.subset,
                                        test_subset=args.test_subset, device=args.device,
                                        compile=args.compile or None).items() if v is not None}
    preset = presets.get_preset(args.preset, **overrides)
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH, the file to resume from.")
    device = runtime.pick_device(preset.device)
    fmnist = data.load_fashion_mnist()
    run = presets.build_run(preset, data=fmnist, device=device)
    print(f"training preset {preset.name!r} on {runtime.describe_device(device)}: {preset}", flush=True)
    history = run.fit(callbacks=[train.PrintEpochs(preset.num_epochs)], checkpoint=args.checkpoint,
                      resume=args.resume, progress=not args.no_progress, max_steps=args.max_steps)
    out = Path(args.out if args.out is not None else Path("runs") / preset.name)
    out.mkdir(parents=True, exist_ok=True)
    history.save_json(out / "history.json")
    if history.epochs:
        fig = viz.history_curves(history, title=f"{preset.name} preset on {device.type}")
        fig.savefig(out / "curves.png", dpi=110)
    print(f"summary: {history.summary()}")
    print(f"wrote {out / 'history.json'}" + (f" and {out / 'curves.png'}" if history.epochs else ""))
    return 1 if history.stopped else 0


def _add_train(sub):
    from . import presets, runtime
    p = sub.add_parser("train", help="train NiN with a named preset (d2l, improved, quick)")
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(presets.names())} (default: quick)")
    p.add_argument("--epochs", type=_int, default=None, help="number of epochs (default: the preset's)")
    p.add_argument("--lr", type=_float, default=None, help="learning rate (peak rate for one-cycle presets)")
    p.add_argument("--batch-size", type=_int, default=None, help="mini-batch size")
    p.add_argument("--resize", type=_int, default=None, help="image side in pixels (224 for the seed's net)")
    p.add_argument("--device", default=None, choices=list(runtime.DEVICES), help="auto (default), cpu, cuda or mps")
    p.add_argument("--seed", type=_int, default=None, help="random seed (default 0)")
    p.add_argument("--subset", type=_int, default=None, help="train on this many images only")
    p.add_argument("--test-subset", type=_int, default=None, help="evaluate on this many test images only")
    p.add_argument("--checkpoint", default=None, help="save every epoch to this file (.pt)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--out", default=None, help="folder for history.json and curves.png (default runs/PRESET)")
    p.add_argument("--max-steps", type=_int, default=None, help="stop after this many batches")
    p.add_argument("--compile", action="store_true", help="use torch.compile (CUDA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_bench(args):
    """Run benchmarks/bench.py (the d2l-style pipeline against fit) with the remaining arguments."""
    import importlib.util
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
    if not script.is_file():
        raise UsageError("bench needs the repository's benchmarks/bench.py, which is not next to this nin_lib")
    spec = importlib.util.spec_from_file_location("nin_bench", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args.args, parser_class=_Parser)


def _add_bench(sub):
    import argparse as _argparse
    p = sub.add_parser("bench", add_help=False, prefix_chars="+", help="time the d2l-style pipeline against fit (benchmarks/bench.py)")
    p.add_argument("args", nargs=_argparse.REMAINDER, help="arguments of benchmarks/bench.py (--help lists them)")
    p.set_defaults(func=cmd_bench)


_EXTRA_COMMANDS += [_add_train, _add_bench]


def main(argv=None):
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # the library's one-sentence errors about bad values
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (fit itself keeps the run and returns)
        print("error: interrupted (Ctrl-C).", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk or a folder that cannot be written: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        from .train import is_out_of_memory
        if not is_out_of_memory(e):
            raise
        print("error: out of memory before training started; use a smaller batch size or image size.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
