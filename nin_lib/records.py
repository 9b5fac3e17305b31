"""Recorded runs (lessons 00, 04, 05, 07): JSON written by the project's commands (a run or a grid of experiments) and
fp16 weights whose sha256 a run's record keeps, in ``nin_lib/recorded/`` or ``NIN_RECORDS_DIR`` (searched first)."""
import hashlib
import json
import os
from pathlib import Path

import torch

from . import checks, runtime
from .presets import Preset
from .train import History

RECORDS_ENV = "NIN_RECORDS_DIR"
PACKAGED = Path(__file__).resolve().parent / "recorded"
KINDS = {"run": "nin-record-1", "experiments": "nin-experiments-1"}  # a record's kind: its "format"
RECORD_FORMAT = KINDS["run"]


def folders():
    """The folders searched for records, in order: ``NIN_RECORDS_DIR`` (if set), then the package's own."""
    extra = os.environ.get(RECORDS_ENV, "").strip()
    return ([Path(extra)] if extra else []) + [PACKAGED]


def locate(name, folder=None):
    """The path of a recorded file (``quick-cpu-seed-0``, a ``.json`` or a ``.pt`` name), or None (lesson 04)."""
    paths = (Path(where) / (name if Path(name).suffix else f"{name}.json")
             for where in ([folder] if folder is not None else folders()))
    return next((path for path in paths if path.is_file()), None)


def _read(path):
    """A JSON file as a dict; {} when there is no file or it holds no JSON object."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8")) if path is not None else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def load(name, format=RECORD_FORMAT, folder=None):
    """The record ``name`` as a dict (a run; a grid with ``format=experiments.FORMAT``); else one sentence."""
    record = _read(locate(name, folder))
    if record.get("format") != format:
        raise checks.refuse(f"record {name!r} is not a {format} file in the records folders; the records found "
                            f"are: {', '.join(names()) or 'none'}")
    return record


def names(kind=None, folder=None):
    """The names of the records found, sorted; ``kind`` 'run' or 'experiments' keeps only those (lesson 07)."""
    formats = list(KINDS.values()) if kind is None else [KINDS[checks.choice("record kind", kind, tuple(KINDS))]]
    paths = (path for where in ([Path(folder)] if folder is not None else folders()) for path in where.glob("*.json"))
    return sorted({path.stem for path in paths if _read(path).get("format") in formats})


def write(record, name, folder=None):
    """Write ``record`` (a dict) as ``name``.json into ``folder`` (default: the package's), atomically."""
    path = Path(folder if folder is not None else PACKAGED) / f"{name}.json"
    with runtime.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def make_record(history, *, preset, command, device, confusion=None, wall_seconds=None, weights=None):
    """A run record (a dict) from a finished ``fit``: what ran, where, when, the command, history and timings."""
    epochs = [e for e in history.epochs if not e.get("partial")]
    return {"format": RECORD_FORMAT, "preset": preset.to_dict(), "seed": preset.seed,
            "machine": runtime.machine(device), "command": command, "history": history.to_dict(),
            "confusion_matrix": confusion.tolist() if confusion is not None else None,
            "timings": {"wall_seconds": wall_seconds, "train_seconds": sum(e["train_seconds"] for e in epochs),
                        "epoch_seconds": [e["seconds"] for e in epochs], "images_per_s": history.images_per_s},
            "weights": weights}


def history(record):
    """A run record's ``train.History`` (``viz.record_curves`` draws it like a live one)."""
    return History.from_dict(record["history"])


def about(record):
    """One line about a record: a run's preset, seed, accuracy, machine and date, or a grid's size (lesson 00)."""
    if record["format"] != RECORD_FORMAT:
        return (f"grid of {len(record['configs'])} configuration(s) x {len(record['seeds'])} seed(s), "
                f"{record['mode']} mode, on {record['device']}, {str(record['created'])[:10]}"
                + ("" if record.get("complete") else ", cut short (incomplete)"))
    h, m = history(record), record["machine"]
    acc = "n/a" if h.final_test_acc is None else format(h.final_test_acc, ".3f")
    return (f"{record['preset']['name']} preset, seed {record['seed']}: test accuracy {acc} after {h.trained()}; "
            f"recorded on {m.get('device')}, {m['date'][:10]}, torch {m['torch']}")


def runs(preset=None, device_type=None):
    """The run records of one preset (and one kind of device: 'cuda', 'cpu'), sorted by seed (lessons 00, 05)."""
    found = [r for r in map(load, names("run")) if preset in (None, r["preset"]["name"])
             and str(r["machine"].get("device")).startswith(device_type or "")]
    return sorted(found, key=lambda r: r["seed"])


def save_weights(net, name, *, preset, folder=None):
    """Write ``net``'s weights as fp16 ``name``.pt; returns what a run record keeps of them (file, sha256, preset)."""
    path = Path(folder if folder is not None else PACKAGED) / f"{name}.pt"
    state = {k: v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()
             for k, v in net.state_dict().items()}
    with runtime.atomic_path(path) as tmp:
        torch.save({"preset": preset.to_dict(), "state": state}, tmp)
    return {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "preset": preset.name}


def load_weights(record, folder=None):
    """The net of a run record's (or its name's) weights: sha256 checked, read weights-only, fp32, eval (lesson 04)."""
    record = load(record, folder=folder) if isinstance(record, str) else record
    entry = record.get("weights") or {}
    path = locate(entry["file"], folder) if entry.get("file") else None
    if path is None:
        raise checks.refuse(f"weights {entry.get('file')!r} of the {record['preset']['name']} run with seed "
                            f"{record['seed']} are not shipped here; train and record them first")
    if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
        raise checks.refuse(f"weights {path.name!r} do not match the sha256 their record keeps: the file was changed "
                            "or damaged; restore it or record the run again")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    net = Preset(**saved["preset"]).build_net()
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in saved["state"].items()})
    return net.eval()


def published():
    """What the book's builds and the NiN paper printed, with their sources (lessons 00, 05, 06)."""
    path = PACKAGED / "published.json"
    figures = json.loads(path.read_text(encoding="utf-8"))
    if figures.get("format") != "nin-published-1":
        raise RuntimeError(f"{path} is not a nin-published-1 file: the package is damaged")
    return figures
