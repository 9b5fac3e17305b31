"""The book's own code, timed end to end, and set beside nin_lib's ``fit`` on the same recipe (lesson 05).

    python benchmarks/book_code.py run --seed 0 --json runs/book-seed-0.json
    python benchmarks/book_code.py compare --book runs/book-seed-*.json --records DIR --fit d2l-gpu-seed-0 \\
        --profile profile.json --json gpu_speed.json

run: the chapter's cells (d2l-zh 网络中的网络, PyTorch version) as the book prints them: the NiN, the shape loop,
then ``d2l.load_data_fashion_mnist(128, resize=224)`` and ``d2l.train_ch6(net, train_iter, test_iter, 10, 0.1,
d2l.try_gpu())``, on the book's own package, d2l 1.0.3 (its wheel from ``vendor/wheels``, unpacked into a
temporary folder that goes first on the path), in a fresh Python process. One line runs before the cells:
``torch.manual_seed(SEED)``, so that each run has a known seed.

Timing: from just before that process starts to the moment its last number (train_ch6's examples/sec line)
arrives: the interpreter's start, the imports, building the data sets and loaders, the 10 epochs with their
test passes and the plots all count. The temporary folder is made beforehand (what a first download would
have left): the wheel unpacked, and the Fashion-MNIST files where ``load_data_fashion_mnist`` looks for them,
``../data/FashionMNIST/raw`` (extracted IDX files) relative to the working directory, which is a temporary
folder too, so its ``download=True`` finds them and downloads nothing. The files come from NIN_DATA_DIR's
``.gz`` files, their checksums verified.

Stand-ins. d2l 1.0.3's ``torch.py`` imports, at its top, modules this chapter never calls or that only a
notebook provides; each gets a minimal module of that name on the path, listed in the output:

- pandas, requests, scipy (``scipy.spatial.distance_matrix``): other chapters' tables, downloads and
  distances. Stood in for only where they are not installed: d2l imports them and this chapter never calls
  them, so nothing that is timed changes (where they are installed, the real ones load, their import counted).
- IPython (``IPython.display``) and matplotlib_inline (``backend_inline``): a notebook's display machinery,
  always stood in for, because outside a notebook the real IPython only prints a figure's repr. The stand-in
  does what Jupyter's inline backend does with d2l's ``Animator``: ``display(fig)`` renders the figure in the
  format ``d2l.use_svg_display`` asked for (SVG) and drops the image; ``clear_output`` does nothing. So the
  timed run draws the curves as often as the notebook does (seven times an epoch).
  Matplotlib uses the Agg backend (MPLBACKEND=Agg).

A dry run on a CPU: ``--images 10 --test-images 4 --epochs 1 --batch-size 2`` lays out only the first images
of each split and changes the chapter's ``lr, num_epochs, batch_size = 0.1, 10, 128`` to those values
(``train_ch6`` needs at least 5 batches an epoch).

compare: one JSON of the speed comparison: the GPU, the book's seconds and test accuracies per run, ``fit``'s
(from the records the same command wrote with ``python -m nin_lib train --preset d2l --record ...``: their
wall seconds from process start to the record, per-epoch seconds and test accuracies), the profile's top
kernels, and ``ratio`` = the book's mean seconds / fit's. Bad arguments: exit status 2, one sentence.
"""
import gzip
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from nin_lib import checks, cli, data

D2L_VERSION = "1.0.3"
FORMAT = "nin-gpu-speed-1"
SEED_LINE = "lr, num_epochs, batch_size = 0.1, 10, 128"

# the chapter's cells, as the book prints them (d2l-zh, chapter 网络中的网络 (NiN), PyTorch)
CHAPTER = '''\
import torch
from torch import nn
from d2l import torch as d2l


def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())

net = nn.Sequential(
    nin_block(1, 96, kernel_size=11, strides=4, padding=0),
    nn.MaxPool2d(3, stride=2),
    nin_block(96, 256, kernel_size=5, strides=1, padding=2),
    nn.MaxPool2d(3, stride=2),
    nin_block(256, 384, kernel_size=3, strides=1, padding=1),
    nn.MaxPool2d(3, stride=2),
    nn.Dropout(0.5),
    # 标签类别数是10
    nin_block(384, 10, kernel_size=3, strides=1, padding=1),
    nn.AdaptiveAvgPool2d((1, 1)),
    # 将四维的输出转成二维的输出，其形状为(批量大小,10)
    nn.Flatten())

X = torch.rand(size=(1, 1, 224, 224))
for layer in net:
    X = layer(X)
    print(layer.__class__.__name__,'output shape:\\t', X.shape)

lr, num_epochs, batch_size = 0.1, 10, 128
train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size, resize=224)
d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr, d2l.try_gpu())
'''

# stand-in modules: {module: (files {relative path: source}, why, only where the real one is missing)}
_DISPLAY = '''"""Stand-in for IPython.display: what Jupyter's inline backend does with a figure (render it, drop it)."""
import io

from matplotlib_inline import backend_inline


def display(*objs, **kwargs):
    for obj in objs:
        if hasattr(obj, "savefig"):
            obj.savefig(io.BytesIO(), format=backend_inline.FORMATS[0], bbox_inches="tight")


def clear_output(wait=False):
    pass
'''
_IPYTHON = '''"""Stand-in for IPython (display only): no interactive shell runs here."""
version_info = (8, 24, 0)  # what matplotlib asks when IPython is imported: a version it has nothing to fix for


def get_ipython():
    return None
'''
_INLINE = '''"""Stand-in for matplotlib_inline.backend_inline: remembers the figure format a notebook would use."""
FORMATS = ["png"]


def set_matplotlib_formats(*formats, **kwargs):
    FORMATS[:] = list(formats) or ["png"]
'''
_UNUSED = '"""Stand-in: d2l imports {name}, and this chapter never calls it."""\n'
_DISTANCE = ('"""Stand-in: d2l imports distance_matrix, and this chapter never calls it."""\n\n\n'
             'def distance_matrix(*args, **kwargs):\n'
             '    raise NotImplementedError("scipy is not installed; this stand-in only lets d2l import")\n')
STAND_INS = {
    "IPython": ({"IPython/__init__.py": _IPYTHON, "IPython/display.py": _DISPLAY},
                "a notebook's display: display(fig) renders the figure as Jupyter's inline backend does, then drops "
                "it (outside a notebook the real one only prints a repr)", False),
    "matplotlib_inline": ({"matplotlib_inline/__init__.py": "", "matplotlib_inline/backend_inline.py": _INLINE},
                          "the notebook's inline backend: only remembers the figure format (SVG) d2l asks for", False),
    "pandas": ({"pandas/__init__.py": _UNUSED.format(name="pandas")}, "imported by d2l, never called here", True),
    "requests": ({"requests/__init__.py": _UNUSED.format(name="requests")}, "imported by d2l, never called here", True),
    "scipy": ({"scipy/__init__.py": _UNUSED.format(name="scipy"), "scipy/spatial/__init__.py": _DISTANCE},
              "imported by d2l (scipy.spatial.distance_matrix), never called here", True),
}


# ---------------------------------------------------------------------------------------------
# run: the book's code in a fresh process

def find_wheel(folder):
    """The d2l 1.0.3 wheel in ``folder``, or one sentence saying how to get it."""
    wheels = sorted(Path(folder).glob(f"d2l-{D2L_VERSION}-*.whl"))
    if not wheels:
        raise checks.refuse(f"the d2l {D2L_VERSION} wheel is not in {str(folder)!r}; download it with "
                            f"`python -m pip download d2l=={D2L_VERSION} --no-deps -d {folder}`")
    return wheels[0]


def write_stand_ins(site):
    """Write the stand-in modules into ``site``; returns {module: why} for those written."""
    import importlib.util
    written = {}
    for name, (files, why, only_if_missing) in STAND_INS.items():
        if only_if_missing and importlib.util.find_spec(name) is not None:
            continue
        for relative, source in files.items():
            path = site / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        written[name] = why
    return written


def write_idx_subset(gz_path, target, count=None):
    """Write the IDX file inside ``gz_path`` to ``target``, keeping only its first ``count`` items (None: all)."""
    raw = gzip.decompress(Path(gz_path).read_bytes())
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    shape = list(struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim]))
    n = shape[0] if count is None else min(count, shape[0])
    item = 1
    for d in shape[1:]:
        item *= d
    header = struct.pack(f">I{ndim}I", magic, n, *shape[1:])
    body = raw[4 + 4 * ndim:4 + 4 * ndim + n * item]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(header + body)


def lay_out_data(root, images=None, test_images=None):
    """Fashion-MNIST in torchvision's layout under ``root`` (``FashionMNIST/raw``), from NIN_DATA_DIR's files."""
    for name, (filename, *_rest) in data.FILES.items():
        count = images if name.startswith("train") else test_images
        write_idx_subset(data.find(name, allow_download=False), root / "FashionMNIST" / "raw" / filename[:-3], count)


def chapter_source(seed, epochs=None, batch_size=None):
    """The program the fresh process runs: the seed line, then the chapter's cells (sizes changed for a dry run)."""
    cells = CHAPTER
    if epochs is not None or batch_size is not None:
        cells = cells.replace(SEED_LINE, f"lr, num_epochs, batch_size = 0.1, {epochs or 10}, {batch_size or 128}")
    return f"import torch; torch.manual_seed({seed})  # which run this is; the chapter's cells follow\n\n{cells}"


def parse_lines(lines):
    """train_ch6's numbers from the printed lines: device, loss, train and test accuracy, examples/s."""
    out = {"device": None, "loss": None, "train_acc": None, "test_acc": None, "examples_per_s": None}
    for line in lines:
        if line.startswith("training on "):
            out["device"] = line[len("training on "):].strip()
        m = re.match(r"loss ([\d.naninf]+), train acc ([\d.]+), test acc ([\d.]+)", line)
        if m:
            out["loss"], out["train_acc"], out["test_acc"] = (float(g) for g in m.groups())
        m = re.match(r"([\d.]+) examples/sec on (.+)", line)
        if m:
            out["examples_per_s"] = float(m.group(1))
    return out


def time_chapter(script, workdir, site):
    """Run ``script`` in a fresh Python process in ``workdir``; its lines, and the seconds from just before the
    start to its last number (train_ch6's examples/sec line) and to its exit."""
    env = {**os.environ, "PYTHONPATH": str(site), "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    lines, last = [], None
    start = time.time()
    with subprocess.Popen([sys.executable, str(script)], cwd=workdir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as child:
        for line in child.stdout:
            if " examples/sec on " in line:
                last = time.time()
            lines.append(line.rstrip("\n"))
            print(f"  | {lines[-1]}", flush=True)
    if child.returncode != 0 or last is None:
        tail = " / ".join(lines[-3:]) or "nothing"
        raise checks.refuse(f"the book's code ended with exit status {child.returncode} before its last number; "
                            f"its output ends: {tail}")
    return lines, last - start, time.time() - start


def run_book(args):
    """Mode 'run': prepare the temporary folder, run the chapter once, write its numbers as JSON."""
    wheel = find_wheel(args.wheels)
    with tempfile.TemporaryDirectory(prefix="book-code-") as tmp:
        tmp = Path(tmp)
        site, workdir = tmp / "site", tmp / "work"
        workdir.mkdir()
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
        stand_ins = write_stand_ins(site)
        lay_out_data(tmp / "data", args.images, args.test_images)  # "../data" seen from the working directory
        script = tmp / "chapter.py"
        script.write_text(chapter_source(args.seed, args.epochs, args.batch_size))
        print(f"book's code, seed {args.seed}: d2l {D2L_VERSION} ({wheel.name}), stand-ins for "
              f"{', '.join(stand_ins) or 'nothing'}", flush=True)
        lines, seconds, exit_seconds = time_chapter(script, workdir, site)
    result = {"seed": args.seed, "seconds": seconds, "exit_seconds": exit_seconds, **parse_lines(lines),
              "d2l": D2L_VERSION, "wheel": wheel.name, "stand_ins": stand_ins,
              "images": args.images or 60000, "test_images": args.test_images or 10000,
              "epochs": args.epochs or 10, "batch_size": args.batch_size or 128, "lines": lines}
    print(f"book's code, seed {args.seed}: {seconds:.1f} s from process start to its last number, "
          f"test acc {result['test_acc']}", flush=True)
    _write_json(result, args.json)
    return 0


# ---------------------------------------------------------------------------------------------
# compare: one JSON of the side-by-side

def _stats(values):
    values = [v for v in values if v is not None]
    return {"mean": statistics.mean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None), "n": len(values)}


def book_summary(paths):
    """The book's runs (``run``'s JSON files) with the mean and spread of their seconds and test accuracies."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    return {"what": f"d2l {D2L_VERSION} load_data_fashion_mnist(128, resize=224) + the chapter's NiN + "
                    "train_ch6(net, train_iter, test_iter, 10, 0.1, d2l.try_gpu())",
            "timed": "from just before the process starts to train_ch6's last printed number",
            "stand_ins": runs[0]["stand_ins"] if runs else None, "runs": runs,
            "seconds": _stats([r["seconds"] for r in runs]), "test_acc": _stats([r["test_acc"] for r in runs])}


def fit_run(folder, name):
    """One ``fit`` run from its record in ``folder``: seconds, per-epoch times, accuracies."""
    from nin_lib import records
    record = records.load(name, folder=folder)
    history = records.history(record)
    return {"record": name, "seed": record["seed"], "seconds": record["timings"]["wall_seconds"],
            "train_seconds": record["timings"]["train_seconds"], "epoch_seconds": record["timings"]["epoch_seconds"],
            "test_acc": history.final_test_acc, "test_accs": history.test_acc,
            "images_per_s": record["timings"]["images_per_s"], "device": record["machine"].get("device"),
            "gpu": record["machine"].get("gpu"), "command": record["command"], "weights": record.get("weights")}


def fit_summary(folder, names):
    """fit's runs (the records that exist among ``names``) with the mean and spread of seconds and accuracies."""
    runs = [fit_run(folder, n) for n in names if (Path(folder) / f"{n}.json").is_file()]
    return {"what": "python -m nin_lib train --preset d2l (fit: data on the device, bf16 autocast and "
                    "channels_last on CUDA), 10 epochs, the whole test set after every epoch",
            "timed": "from process start to the record being written (the confusion-matrix pass, curves.png and "
                     "the weights included, so fit's seconds are a little high)",
            "runs": runs, "seconds": _stats([r["seconds"] for r in runs]),
            "test_acc": _stats([r["test_acc"] for r in runs])}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _milliseconds(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def profile_rows(table):
    """The rows of a torch.profiler table (``key_averages().table``) as dicts keyed by its column names."""
    lines = table.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("---")]
    if len(rules) < 3:
        return []
    spans = [m.span() for m in re.finditer(r"-+", lines[rules[0]])]
    header = [lines[rules[0] + 1][a:b].strip() for a, b in spans]
    return [dict(zip(header, (line[a:b].strip() for a, b in spans))) for line in lines[rules[1] + 1:rules[2]]]


def top_kernels(table, rows=10):
    """The profile's top rows by self time on the device (on a CPU: self CPU time): name, ms, share, calls."""
    found = profile_rows(table)
    if not found:
        return []
    columns = list(found[0])
    device = [c for c in columns if c.startswith("Self ") and "CPU" not in c and not c.endswith("%")]
    key = device[0] if device else "Self CPU"
    return [{"name": r["Name"], "self_ms": _milliseconds(r.get(key, "")), "percent": r.get(f"{key} %"),
             "calls": int(r["# of Calls"]) if r.get("# of Calls", "").isdigit() else None, "column": key}
            for r in found[:rows]]


def read_parts(path):
    """The parts the shell script ran (its tab-separated log): name, exit status, seconds from starting the
    command to its exit, limit."""
    if path is None or not Path(path).is_file():
        return []
    parts = []
    for line in Path(path).read_text().splitlines():
        name, status, seconds, limit = (line.split("\t") + ["", "", "", ""])[:4]
        parts.append({"name": name, "exit": status, "seconds": _number(seconds), "limit": _number(limit)})
    return parts


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def compare(args):
    """Mode 'compare': write the one JSON of the speed comparison."""
    import torch
    from nin_lib import runtime
    book = book_summary(args.book)
    fit = fit_summary(args.records, args.fit)
    profile = json.loads(Path(args.profile).read_text()) if args.profile and Path(args.profile).is_file() else None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    device = next((r["device"] for r in fit["runs"] if r.get("device")), None) or (
        f"cuda ({gpu})" if gpu else runtime.describe_device("cpu"))
    parts = read_parts(args.parts)
    launched = {p["name"]: p["seconds"] for p in parts if p["exit"] == "0"}
    for r in fit["runs"]:  # the same run timed from outside: from starting the command to its exit
        r["launch_to_exit_seconds"] = launched.get(f"fit d2l seed {r['seed']}")
    b, f = book["seconds"]["mean"], fit["seconds"]["mean"]
    b_exit = _stats([r["exit_seconds"] for r in book["runs"]])["mean"]
    f_exit = _stats([r["launch_to_exit_seconds"] for r in fit["runs"]])["mean"]
    out = {"format": FORMAT, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "dry_run": args.dry_run, "gpu": gpu, "device": device,
           "machine": runtime.machine(), "nvidia_smi": _text(args.env),
           "recipe": "the chapter's NiN, Xavier-uniform init, SGD lr 0.1, batch 128, 224 px, 10 epochs, the whole "
                     "test set after every epoch",
           "book": book, "fit": fit, "ratio": b / f if b and f else None,
           "ratio_means": "the book's mean seconds / fit's mean seconds, each from process start",
           "ratio_launch_to_exit": b_exit / f_exit if b_exit and f_exit else None,
           "profile": None if profile is None else {
               "preset": profile.get("preset"), "steps": profile.get("steps"), "device": profile.get("device"),
               "top_kernels": top_kernels(profile["table"], args.rows), "table": profile["table"]},
           "parts": parts, "budget_s": args.budget}
    _write_json(out, args.json)
    ratio = "n/a" if out["ratio"] is None else f"{out['ratio']:.2f}x"
    print(f"book's code {_fmt(b)} s ({book['seconds']['n']} run(s)), fit {_fmt(f)} s ({fit['seconds']['n']} run(s)): "
          f"ratio {ratio}; test acc book {_fmt(book['test_acc']['mean'], 3)}, fit {_fmt(fit['test_acc']['mean'], 3)}")
    return 0


def _fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _text(path):
    return Path(path).read_text() if path and Path(path).is_file() else None


def _write_json(obj, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}", flush=True)


# ---------------------------------------------------------------------------------------------
# Command line

def build_parser():
    positive = checks.whole_number_text(1)
    parser = cli.Parser(prog="benchmarks/book_code.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", parser_class=cli.Parser)
    sub.required = True
    p = sub.add_parser("run", help="time the book's own code once")
    p.add_argument("--seed", type=checks.whole_number_text(0), default=0)
    p.add_argument("--json", required=True, help="write the run's numbers here")
    p.add_argument("--wheels", default="vendor/wheels", help="the folder holding the d2l 1.0.3 wheel")
    p.add_argument("--images", type=positive, default=None, help="dry run: training images (default: all 60,000)")
    p.add_argument("--test-images", type=positive, default=None, help="dry run: test images (default: all 10,000)")
    p.add_argument("--epochs", type=positive, default=None, help="dry run: the chapter's num_epochs (default 10)")
    p.add_argument("--batch-size", type=positive, default=None, help="dry run: the chapter's batch_size (default 128)")
    p = sub.add_parser("compare", help="one JSON of the book's runs, fit's runs and the profile")
    p.add_argument("--book", nargs="*", default=[], help="the JSON files of the book's runs")
    p.add_argument("--records", required=True, help="the folder of fit's records")
    p.add_argument("--fit", nargs="*", default=[], help="the names of fit's records")
    p.add_argument("--profile", default=None, help="the JSON of `python benchmarks/bench.py profile`")
    p.add_argument("--parts", default=None, help="the shell script's log of its parts")
    p.add_argument("--env", default=None, help="a text file about the machine (nvidia-smi)")
    p.add_argument("--budget", type=positive, default=None, help="the command's time budget in seconds")
    p.add_argument("--rows", type=positive, default=10, help="top kernels to keep (default 10)")
    p.add_argument("--dry-run", action="store_true", help="mark the results as a dry run (nothing meaningful)")
    p.add_argument("--json", required=True)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    return {"run": run_book, "compare": compare}[args.mode](args)


if __name__ == "__main__":
    sys.exit(cli.run_script(main))
