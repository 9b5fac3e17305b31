"""The command line: ``python -m nin_lib trace | train | bench | records`` (see ``--help``).

Bad arguments end with exit status 2 and one sentence on standard error, never argparse's usage dump or a
traceback; the scripts under ``benchmarks/`` use the same ``Parser``.
"""
import argparse
import shlex
import sys
from pathlib import Path

from . import checks, models, presets, runtime


class UsageError(Exception):
    """A bad command-line value; printed as one sentence with exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}.")


_int = checks.whole_number_text()
_float = checks.number_text


# ---------------------------------------------------------------------------------------------
# trace

def cmd_trace(args):
    from . import shapes
    net = models.get_model(args.model)
    size = args.input_size if args.input_size is not None else models.model_input_size(args.model)
    if args.table:
        print(shapes.trace(net, size, depth=args.depth))
    else:
        shapes.print_seed_table(net, size)
    return 0


def _add_trace(sub):
    p = sub.add_parser("trace", help="print a net's layer-by-layer output shapes (the seed's table)")
    p.add_argument("--model", default="d2l", choices=list(models.MODELS), help="which net (default: d2l, the seed's NiN)")
    p.add_argument("--input-size", type=_int, default=None, help="input height and width in pixels (default: the model's own)")
    p.add_argument("--table", action="store_true", help="print the richer table (shape, parameters, MACs, receptive field)")
    p.add_argument("--depth", default="top", choices=["top", "leaf"], help="table rows per top-level layer or per leaf layer")
    p.set_defaults(func=cmd_trace)


# ---------------------------------------------------------------------------------------------
# train (lesson 05)

def cmd_train(args):
    """Train a preset, print one line per epoch and a summary, write history.json and curves.png (and a record)."""
    import matplotlib
    matplotlib.use("Agg")
    from . import data, records, train, viz

    overrides = {k: v for k, v in dict(num_epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                                        resize=args.resize, seed=args.seed, subset=args.subset,
                                        test_subset=args.test_subset, device=args.device, threads=args.threads,
                                        compile=args.compile or None).items() if v is not None}
    preset = presets.get_preset(args.preset, **overrides)
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH, the file to resume from.")
    if args.weights and not args.record:
        raise UsageError("--weights needs --record NAME, the record the weights belong to.")
    device = runtime.pick_device(preset.device)
    if device.type == "cpu" and preset.threads is not None:
        runtime.follow_cpu_quota(preset.threads)
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
    if args.record and history.epochs:
        y, y_hat = train.predict(run.net, run.test_iter)
        weights = records.save_weights(run.net, args.weights, preset=preset, folder=args.record_dir) \
            if args.weights else None
        record = records.make_record(history, preset=preset, device=device, command=_command(args.argv),
                                     confusion=train.confusion_matrix(y, y_hat),
                                     wall_seconds=runtime.process_seconds(), weights=weights)
        print(f"recorded {records.write(record, args.record, args.record_dir).name}"
              + (f" and {weights['file']}" if weights else ""))
    return 1 if history.stopped else 0


def _command(argv):
    return shlex.join(["python", "-m", "nin_lib", *argv])


def _add_train(sub):
    p = sub.add_parser("train", help="train NiN with a named preset (d2l, improved, quick)")
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(presets.names())} (default: quick)")
    p.add_argument("--epochs", type=_int, default=None, help="number of epochs (default: the preset's)")
    p.add_argument("--lr", type=_float, default=None, help="learning rate (peak rate for one-cycle presets)")
    p.add_argument("--batch-size", type=_int, default=None, help="mini-batch size")
    p.add_argument("--resize", type=_int, default=None, help="image side in pixels (224 for the seed's net)")
    p.add_argument("--device", default=None, choices=list(runtime.DEVICES), help="auto (default), cpu, cuda or mps")
    p.add_argument("--threads", type=_int, default=None, help="torch CPU threads (default: what the CPU quota allows)")
    p.add_argument("--seed", type=_int, default=None, help="random seed (default 0)")
    p.add_argument("--subset", type=_int, default=None, help="train on this many images only")
    p.add_argument("--test-subset", type=_int, default=None, help="evaluate on this many test images only")
    p.add_argument("--checkpoint", default=None, help="save every epoch to this file (.pt)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--out", default=None, help="folder for history.json and curves.png (default runs/PRESET)")
    p.add_argument("--record", default=None, metavar="NAME",
                   help="also write the run as the record NAME (what ran, where, when, this command, the history)")
    p.add_argument("--record-dir", default=None, help="folder for the record (default: the package's records)")
    p.add_argument("--weights", default=None, metavar="NAME", help="with --record: keep the trained weights (fp16) as NAME")
    p.add_argument("--max-steps", type=_int, default=None, help="stop after this many batches")
    p.add_argument("--compile", action="store_true", help="use torch.compile (CUDA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


# ---------------------------------------------------------------------------------------------
# bench (benchmarks)

def cmd_bench(args):
    """``nin_lib.bench`` with the remaining arguments (the d2l-style pipeline against fit, presets, profiles)."""
    from . import bench
    return bench.main(args.args, parser_class=Parser)


def _add_bench(sub):
    p = sub.add_parser("bench", add_help=False, prefix_chars="+", help="time the d2l-style pipeline against fit")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's arguments (--help lists them)")
    p.set_defaults(func=cmd_bench)


# ---------------------------------------------------------------------------------------------
# records (the recorded runs the lessons show)

def _folder_name(folder):
    """How a records folder is named in the output: the package's by its place in the package."""
    from . import records
    return "the package's records (nin_lib/recorded)" if Path(folder) == records.PACKAGED else str(folder)


def cmd_records(args):
    """``records list``: what is recorded, each file's hash checked; ``records import``: bring records in."""
    return _list_records(args) if args.action == "list" else _import_records(args)


def _list_records(args):
    from . import records
    for folder in [Path(args.dir)] if args.dir else records.folders():
        entries = records.listing(folder)
        print(f"{_folder_name(folder)}: {len(entries)} record(s)")
        for e in entries:
            print(f"  {e['name']} ({e['kind']}, {_check(e['problem'])}): {e['about']}")
            if e["weights"]:
                print(f"    weights {e['weights']}: {_check(e['weights_problem'])}")
    return 0


def _check(problem):
    return "ok" if problem is None else f"NOT OK: {problem}"


def _import_records(args):
    from . import records
    copied = records.import_records(args.dir, args.names or None, into=args.into, weights=not args.without_weights)
    into = args.into if args.into is not None else records.PACKAGED
    print(f"copied {len(copied)} file(s) into {_folder_name(into)}, each listed in its {records.SUMS}: "
          + ", ".join(copied))
    return 0


def _add_records(sub):
    p = sub.add_parser("records", help="list the recorded runs, or import them from a GPU run's folder")
    actions = p.add_subparsers(dest="action", parser_class=Parser)
    actions.required = True
    listing = actions.add_parser("list", help="the records found, each file's sha256 checked")
    listing.add_argument("--dir", default=None,
                         help="list this folder only (default: NIN_RECORDS_DIR, then the package's)")
    imp = actions.add_parser("import", help="copy records and the weights they name into the package's records")
    imp.add_argument("dir", help="the folder holding the records and their SHA256SUMS (e.g. a GPU run's output)")
    imp.add_argument("names", nargs="*", metavar="NAME",
                     help="records (NAME or NAME.json) and weights files (NAME.pt) to copy (default: every record)")
    imp.add_argument("--without-weights", action="store_true",
                     help="copy the named records without the weights they name (name a .pt to bring one)")
    imp.add_argument("--into", default=None, help="copy into this folder (default: the package's records)")
    p.set_defaults(func=cmd_records)


def build_parser():
    parser = Parser(prog="python -m nin_lib",
                    description="NiN lessons: trace, train, benchmark and manage records from the shell.")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    sub.required = True
    for add in (_add_trace, _add_train, _add_bench, _add_records):
        add(sub)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (2 and one sentence on stderr for a bad argument)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    runtime.process_seconds()  # start the clock of the whole command (if the platform cannot tell it)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        return args.func(args)
    except (UsageError, ValueError) as e:  # a bad argument, or the library's one sentence about a bad value
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


def run_script(main_function, argv=None):
    """Run a benchmark script's ``main``: bad arguments or values end with exit status 2 and one sentence."""
    try:
        return main_function(sys.argv[1:] if argv is None else argv)
    except (UsageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

