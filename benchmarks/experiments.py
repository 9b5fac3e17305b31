"""Lesson 06's experiments: the chapter's claims put to a measured test over several seeds.

Runs a grid of configurations (GAP vs FC head, dropout on/off, two/one/no 1×1 convs, BatchNorm vs
none, the seed's recipe vs the improved preset, a late reduction to the class maps), each once per
seed, and writes a JSON file with every seed's numbers, their mean and spread, the machine, the
date and this command (``nin_lib.experiments`` holds the logic; lesson 06 reads the file).

    python benchmarks/experiments.py --tiny --out runs/experiments_tiny.json   # seconds (tests, CI)
    python benchmarks/experiments.py --threads 1
        # the CPU grid: 28-px NiN, 10 configurations x 3 seeds, about 40 min on a 2-core machine;
        # written as the record nin_lib/recorded/experiments-cpu.json (the lesson reads it from the package)
    python benchmarks/experiments.py --device cuda --full --out "$OUT/experiments-gpu.json"
        # GPU: the 224-px configurations (CONFIGS_224: the seed's recipe, the improved preset and lesson 06's
        # questions at the chapter's size) over the seeds; --only picks some, --epochs and --train-size size them
        # to the time there is (benchmarks/gpu_run.sh does). Without --full, --device cuda runs the 28-px grid.

Data: NIN_DATA_DIR. The file is rewritten after every run (``complete`` stays false until the end),
so a run cut short by a time limit keeps what it measured.
Bad arguments: exit status 2, one sentence.
"""
import shlex
import sys
import time

from nin_lib import checks, data, experiments, records, runtime
from nin_lib.cli import Parser as _Parser, UsageError


def build_parser():
    p = _Parser(prog="benchmarks/experiments.py", description=__doc__.splitlines()[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="a grid that runs in seconds (tests)")
    size.add_argument("--full", action="store_true",
                      help="run the 224-px configurations (the seed's recipe, improved, lesson 06's questions) (for a GPU)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    p.add_argument("--out", default=None, help="the JSON file to write (default: the package's record "
                   "experiments-cpu.json on a CPU, experiments-gpu.json on a GPU, runs/experiments_tiny.json with --tiny)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--only", nargs="+", default=None, metavar="CONFIG",
                   help=f"run only these configurations ({', '.join(experiments.config_names(True))})")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the grid's)")
    p.add_argument("--train-size", type=int, default=None, help="training images per run (default: the grid's)")
    p.add_argument("--test-size", type=int, default=None, help="test images per run (default: the grid's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--list", action="store_true", help="print the configurations and exit")
    return p


def default_out(args, device):
    if args.tiny:
        return "runs/experiments_tiny.json"
    return str(records.PACKAGED / ("experiments-gpu.json" if device.type == "cuda" else "experiments-cpu.json"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.list:
        for name in experiments.config_names(True):
            print(f"{name:>13}: {experiments.CONFIGS.get(name, experiments.CONFIGS_224.get(name))[0]}")
        return 0
    try:
        if args.threads is not None:
            runtime.follow_cpu_quota(checks.whole_number("--threads", args.threads, 1))
        if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
            raise checks.refuse(f"--seeds {args.seeds} is not allowed; give distinct whole numbers >= 0")
        device = runtime.pick_device(args.device)
        mode = "tiny" if args.tiny else "cpu"
        sizes = dict(num_epochs=args.epochs, train_size=args.train_size, test_size=args.test_size)
        settings = experiments.grid_settings(mode, **sizes)
        names = args.only or (list(experiments.CONFIGS_224) if args.full else experiments.config_names())
        for name in names:
            experiments._config(name)
        settings_224 = (experiments.grid_settings("full", **sizes)
                        if any(n in experiments.CONFIGS_224 for n in names) else None)
        out = args.out or default_out(args, device)
        fmnist = data.load_fashion_mnist()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = shlex.join(["python", "benchmarks/experiments.py", *argv])
    print(f"{len(names)} configurations x {len(args.seeds)} seeds on {runtime.describe_device(device)}; "
          f"writing {out}", flush=True)
    start = time.perf_counter()
    results = experiments.run_grid(names, args.seeds, settings, fmnist=fmnist, device=device,
                                   settings_224=settings_224, out=out, command=command,
                                   mode="full" if args.full else mode,
                                   log=lambda line: print(line, flush=True))
    print(f"done in {time.perf_counter() - start:.0f} s")
    for name, c in results["configs"].items():
        s = c["summary"]["test_acc"]
        print(f"{name:>13}: test acc {s['mean']:.3f} ± {s['std']:.3f} over {s['n']} seeds, "
              f"{c['parameters']:,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
