"""``python -m nin_lib trace | train | records list | handout``: a bad value (a ``checks.Refusal``) is one sentence
on stderr and exit status 2; any other exception is a bug, shown with its traceback. ``benchmarks/`` reuse
``run_script``."""
import argparse
import re
import shlex
import sys
from pathlib import Path

from . import checks, models, presets, records, runtime, shapes, train


class UsageError(checks.Refusal):
    """A bad command-line argument: one sentence, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError instead of printing usage and exiting (benchmarks use it too)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}.")


# The nets ``trace --model`` knows: name -> (models.nin() arguments, the input side it is built for)
MODELS = {"d2l": ({}, 224), "nin-bn": ({"batch_norm": True}, 224), "nin28": ({"arch": 28}, 28),
          "fc-head": ({"head": "fc"}, 224), "fc-head28": ({"arch": 28, "head": "fc"}, 28)}


def cmd_trace(args):
    """The seed's shape table (lesson 03), or with --table the richer one."""
    options, side = MODELS[args.model]
    net, size = models.nin(**options), args.input_size if args.input_size is not None else side
    print(shapes.trace(net, size, depth=args.depth) if args.table else "\n".join(shapes.seed_lines(net, size)))
    return 0


def cmd_train(args):
    """Train a preset (lesson 05): one line per epoch, a summary, history.json and curves.png (and a record)."""
    import matplotlib
    matplotlib.use("Agg")
    from . import viz
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH, the file to resume from.")
    if args.weights and not args.record:
        raise UsageError("--weights needs --record NAME, the record the weights belong to.")
    overrides = dict(num_epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, resize=args.resize,
                     seed=args.seed, subset=args.subset, test_subset=args.test_subset, device=args.device,
                     threads=args.threads, compile=args.compile or None)
    preset = presets.get_preset(args.preset, **{k: v for k, v in overrides.items() if v is not None})
    run = presets.build_run(preset)
    print(f"training preset {preset.name!r} on {runtime.describe_device(run.device)}: {preset}", flush=True)
    callbacks = [train.PrintEpochs(preset.num_epochs)]
    callbacks += [train.Checkpoint(args.checkpoint, resume=args.resume)] if args.checkpoint else []
    callbacks += [train.MaxSteps(args.max_steps)] if args.max_steps is not None else []
    callbacks += [train.ProgressBar(False)] if args.no_progress else []
    history = run.fit(callbacks=callbacks)
    out = Path(args.out if args.out is not None else Path("runs") / preset.name)
    out.mkdir(parents=True, exist_ok=True)
    history.save_json(out / "history.json")
    if history.epochs:
        fig = viz.history_curves(history, title=f"{preset.name} preset on {run.device.type}")
        fig.savefig(out / "curves.png", dpi=110)
    print(f"summary: {history.summary()}")
    print(f"wrote {out / 'history.json'}" + (f" and {out / 'curves.png'}" if history.epochs else ""))
    if args.record and history.epochs:
        y, y_hat = train.predict(run.net, run.test_iter)
        weights = records.save_weights(run.net, args.weights, preset=preset, folder=args.record_dir) \
            if args.weights else None
        record = records.make_record(history, preset=preset, device=run.device, weights=weights,
                                     command=shlex.join(["python", "-m", "nin_lib", *args.argv]),
                                     confusion=train.confusion_matrix(y, y_hat), wall_seconds=runtime.process_seconds())
        print(f"recorded {records.write(record, args.record, args.record_dir).name}"
              + (f" and {weights['file']}" if weights else ""))
    return 1 if history.stopped else 0


def cmd_records(args):
    """``records list``: the records found (lesson 07), one line each, and whether a run's weights check out."""
    for folder in [Path(args.dir)] if args.dir else records.folders():
        print(f"{folder}: {len(records.names(folder=folder))} record(s)")
        for kind, format in records.KINDS.items():
            for name in records.names(kind, folder):
                record = records.load(name, format, folder)
                print(f"  {name} ({kind}): {records.about(record)}")
                if (record.get("weights") or {}).get("file"):
                    try:
                        records.load_weights(record, folder)
                        check = "ok"
                    except checks.Refusal as e:
                        check = f"NOT OK: {e}"
                    print(f"    weights {record['weights']['file']}: {check}")
    return 0


# handout: the lessons beside the package, and a <details> block holding an answer (with the blank lines before it)
LESSONS = Path(__file__).resolve().parent.parent / "notebooks"
ANSWER = re.compile(r"\s*<details[^>]*>\s*<summary[^>]*>\s*(?:Answer|Worked answer).*?</details>", re.S | re.I)


def student_copy(notebook):
    """Remove a lesson's answers and clear its exercise cells' outputs (``handout``); returns how many of each."""
    answers, exercises, cells = 0, 0, []
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "answer" in tags:  # a cell that works an answer out: the answer itself
            answers += 1
            continue
        if cell.cell_type == "markdown" and ANSWER.search(cell.source):
            answers += len(ANSWER.findall(cell.source))
            cell.source = ANSWER.sub("", cell.source).strip("\n")
            if not cell.source.strip():
                continue  # the cell held answers only
        elif cell.cell_type == "code" and "exercise" in tags:
            cell.outputs, cell.execution_count, exercises = [], None, exercises + 1
            cell.metadata.tags = [tag for tag in tags if tag != "nbval-check-output"]  # nothing stored to check
        cells.append(cell)
    notebook.cells = cells
    return answers, exercises


def cmd_handout(args):
    """Student copies of the lessons for a class: no answers, no stored outputs of the exercise cells."""
    import nbformat
    source, out = Path(args.lessons), Path(args.dir)
    lessons = sorted(source.glob("*.ipynb"))
    if not lessons:
        raise UsageError(f"--lessons {source} holds no notebooks; name the folder of the lessons' .ipynb files.")
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise UsageError(f"DIR {out} is inside the lessons folder {source}; write the copies outside it.")
    if out.exists() and not out.is_dir():
        raise UsageError(f"DIR {out} is a file; name a new or empty folder for the copies.")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f"DIR {out} is not empty; name a new or empty folder, or pass --force to overwrite it.")
    out.mkdir(parents=True, exist_ok=True)
    for path in lessons:
        notebook = nbformat.read(path, as_version=4)
        answers, exercises = student_copy(notebook)
        nbformat.write(notebook, out / path.name)
        print(f"{out / path.name}: {answers} answer(s) removed, outputs of {exercises} exercise cell(s) cleared")
    print(f"wrote {len(lessons)} student copies to {out}")
    return 0


def build_parser():
    """The parser of ``python -m nin_lib``: its four commands and their options."""
    whole, number = checks.whole_number_text(), checks.number_text
    parser = Parser(prog="python -m nin_lib", description="NiN lessons: trace, train, records and student copies.")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, required=True)
    p = sub.add_parser("trace", help="print a net's layer-by-layer output shapes (the seed's table)")
    p.add_argument("--model", default="d2l", choices=list(MODELS), help="which net (default: d2l, the seed's)")
    p.add_argument("--input-size", type=whole, help="input height and width in pixels (default: the model's own)")
    p.add_argument("--table", action="store_true", help="the richer table (shape, parameters, MACs, receptive field)")
    p.add_argument("--depth", default="top", choices=["top", "leaf"], help="table rows per top-level or leaf layer")
    p = sub.add_parser("train", help="train NiN with a named preset (d2l, improved, quick, maps)")
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(presets.names())} (default: quick)")
    p.add_argument("--epochs", type=whole, help="number of epochs (default: the preset's)")
    p.add_argument("--lr", type=number, help="learning rate (peak rate for one-cycle presets)")
    p.add_argument("--batch-size", type=whole, help="mini-batch size")
    p.add_argument("--resize", type=whole, help="image side in pixels (224 for the seed's net)")
    p.add_argument("--device", choices=list(runtime.DEVICES), help="auto (default), cpu, cuda or mps")
    p.add_argument("--threads", type=whole, help="torch CPU threads (default: what the CPU quota allows)")
    p.add_argument("--seed", type=whole, help="random seed (default 0)")
    p.add_argument("--subset", type=whole, help="train on this many images only")
    p.add_argument("--test-subset", type=whole, help="evaluate on this many test images only")
    p.add_argument("--checkpoint", help="save every epoch to this file (.pt)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--out", help="folder for history.json and curves.png (default runs/PRESET)")
    p.add_argument("--record", metavar="NAME", help="also record the run as NAME (what ran, where, when, how)")
    p.add_argument("--record-dir", help="folder for the record (default: the package's records)")
    p.add_argument("--weights", metavar="NAME", help="with --record: keep the trained weights (fp16) as NAME")
    p.add_argument("--max-steps", type=whole, help="stop after this many batches")
    p.add_argument("--compile", action="store_true", help="use torch.compile (CUDA)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("records", help="list the recorded runs")
    actions = p.add_subparsers(dest="action", parser_class=Parser, required=True)
    listing = actions.add_parser("list", help="the records found, and whether each run's weights check out")
    listing.add_argument("--dir", help="list this folder only (default: NIN_RECORDS_DIR, then the package's)")
    p = sub.add_parser("handout", help="write student copies of the lessons: no answers, no exercise outputs")
    p.add_argument("dir", metavar="DIR", help="folder for the copies (new or empty, outside the lessons folder)")
    p.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    p.add_argument("--lessons", default=str(LESSONS), help="folder of the lessons to copy (default: notebooks/)")
    return parser


def run_script(main_function, argv=None):
    """Run ``main_function(argv)``; a Refusal (a bad argument or value) is one sentence on stderr and exit status 2."""
    try:
        return main_function(list(sys.argv[1:] if argv is None else argv))
    except checks.Refusal as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(argv):
    args = build_parser().parse_args(argv)
    args.argv = argv
    return {"trace": cmd_trace, "train": cmd_train, "records": cmd_records, "handout": cmd_handout}[args.command](args)


def main(argv=None):
    """Run the command line; returns the exit status (2 and one sentence on stderr for a bad argument or value)."""
    runtime.process_seconds()  # start the clock of the whole command (if the platform cannot tell it)
    return run_script(_main, argv)
