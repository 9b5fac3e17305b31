"""Recorded runs (lessons 00, 04, 05, 06): real measurements shipped with the package, so that a lesson on any
machine can show what a GPU (or a quiet CPU) measured, with where and when.

A *record* is one JSON file: a training run (format ``nin-record-1``: what ran, where, when, the exact
command, the per-epoch history, the final confusion matrix and timings) or a grid of experiments
(``nin-experiments-1``, ``experiments.run_grid``). Trained weights go beside them as fp16 state dicts.
Every file is written by the project's own commands (``python -m nin_lib train … --record NAME``,
``benchmarks/experiments.py``, the GPU scripts) and listed with its sha256 in the folder's ``SHA256SUMS``;
reading checks the hash, so a file changed by hand or damaged says so instead of showing wrong numbers.

The records live in ``nin_lib/recorded/`` (package data: a pip or Colab install has them). ``NIN_RECORDS_DIR``
names one more folder, searched first (tests, or the output of a GPU run before it is copied in).
``python -m nin_lib records list`` shows what is recorded; ``records import DIR [NAME...]`` copies records (and
the weights they name) from such a folder into the package, each file checked against that folder's SHA256SUMS.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from . import checks, runtime
from .presets import Preset
from .train import History

RECORD_FORMAT = "nin-record-1"
WEIGHTS_FORMAT = "nin-weights-1"
RECORDS_ENV = "NIN_RECORDS_DIR"
PACKAGED = Path(__file__).resolve().parent / "recorded"
SUMS = "SHA256SUMS"


# ---------------------------------------------------------------------------------------------
# Where records are, and their hashes

def folders():
    """The folders searched for records, in order: ``NIN_RECORDS_DIR`` (if set), then the package's own."""
    extra = os.environ.get(RECORDS_ENV, "").strip()
    return ([Path(extra)] if extra else []) + [PACKAGED]


def sha256(path):
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sums(folder):
    """{file name: sha256} from a folder's SHA256SUMS (``sha256sum`` format)."""
    text = runtime._read(Path(folder) / SUMS) or ""
    sums = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            sums[name.strip()] = digest.strip()
    return sums


def _add_sum(folder, path):
    sums = _sums(folder)
    sums[Path(path).name] = sha256(path)
    with runtime.atomic_path(Path(folder) / SUMS) as tmp:
        tmp.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))


def find(name):
    """The path of record file ``name`` (``quick-cpu-seed0`` or ``quick-cpu-seed0.json``), or None."""
    filename = name if Path(name).suffix else f"{name}.json"
    for folder in folders():
        path = folder / filename
        if path.is_file():
            return path
    return None


def verify(path):
    """Raise one sentence unless ``path`` is listed in its folder's SHA256SUMS with its current hash."""
    path = Path(path)
    expected = _sums(path.parent).get(path.name)
    if expected is None:
        raise checks.refuse(f"recorded file {path.name!r} is not listed in {SUMS} beside it, so nothing vouches for "
                            "it; write records with the project's own commands")
    if sha256(path) != expected:
        raise checks.refuse(f"recorded file {path.name!r} does not match its sha256 in {SUMS}: it was changed by hand "
                            "or damaged; restore it or record it again")
    return path


def names(kind=None):
    """The names of the records found (``kind``: 'run' or 'experiments' to keep only those), sorted."""
    found = set()
    for folder in folders():
        for path in folder.glob("*.json") if folder.is_dir() else ():
            if kind is None or _kind(path) == kind:
                found.add(path.stem)
    return sorted(found)


def _kind(path):
    try:
        form = json.loads(Path(path).read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None
    return {RECORD_FORMAT: "run", "nin-experiments-1": "experiments"}.get(form)


def load(name, format=RECORD_FORMAT):
    """The record ``name`` as a dict, its hash checked; a missing, changed or foreign file is one sentence."""
    path = find(name)
    if path is None:
        known = ", ".join(names()) or "none"
        raise checks.refuse(f"record {name!r} is not recorded here; the records found are: {known}")
    verify(path)
    try:
        record = json.loads(path.read_text())
    except ValueError:
        raise checks.refuse(f"record {path.name!r} is not valid JSON; record it again") from None
    if not isinstance(record, dict) or record.get("format") != format:
        raise checks.refuse(f"record {path.name!r} is not a {format} file")
    return record


def write(record, name, folder=None):
    """Write ``record`` (a dict) as ``name``.json into ``folder`` (default: the package's) and list its hash."""
    folder = Path(folder) if folder is not None else PACKAGED
    path = folder / f"{name}.json"
    with runtime.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str, ensure_ascii=False) + "\n")
    _add_sum(folder, path)
    return path


# ---------------------------------------------------------------------------------------------
# Training runs

def make_record(history, *, preset, command, device, confusion=None, wall_seconds=None, weights=None):
    """A run record (a dict) from a finished ``fit``: the preset (what ran), the machine (where), now (when),
    the command, the history, the confusion matrix of the test set and the timings."""
    epochs = [e for e in history.epochs if not e.get("partial")]
    return {"format": RECORD_FORMAT, "preset": preset.to_dict(), "seed": preset.seed,
            "machine": runtime.machine(device), "command": command, "history": history.to_dict(),
            "confusion_matrix": confusion.tolist() if confusion is not None else None,
            "timings": {"wall_seconds": wall_seconds, "train_seconds": sum(e["train_seconds"] for e in epochs),
                        "epoch_seconds": [e["seconds"] for e in epochs], "images_per_s": history.images_per_s},
            "weights": weights}


def history(record):
    """A record's ``train.History`` (``viz.history_curves`` draws it like a live one)."""
    return History.from_dict(record["history"])


def describe(record):
    """One line: preset, seed, test accuracy, epochs, where and when it ran (what a lesson prints beside it)."""
    h = history(record)
    m = record["machine"]
    acc = h.final_test_acc
    return (f"{record['preset']['name']} preset, seed {record['seed']}: test accuracy "
            f"{'n/a' if acc is None else format(acc, '.3f')} after {h.trained()}; recorded on {m.get('device')}, "
            f"{m['date'][:10]}, torch {m['torch']}")


def runs(preset=None, device_type=None):
    """The run records of one preset (and one kind of device: 'cuda', 'cpu'), sorted by seed."""
    found = []
    for name in names("run"):
        record = load(name)
        if preset is not None and record["preset"]["name"] != preset:
            continue
        if device_type is not None and not str(record["machine"].get("device", "")).startswith(device_type):
            continue
        found.append(record)
    return sorted(found, key=lambda r: r["seed"])


# ---------------------------------------------------------------------------------------------
# Trained weights

def save_weights(net, name, *, preset, folder=None):
    """Write ``net``'s weights as an fp16 state dict ``name``.pt (a few MB for the seed's net), list its sha256,
    and return the entry a record keeps under ``weights`` (file, sha256, preset)."""
    folder = Path(folder) if folder is not None else PACKAGED
    path = folder / f"{name}.pt"
    state = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu())
             for k, v in net.state_dict().items()}
    with runtime.atomic_path(path) as tmp:
        torch.save({"format": WEIGHTS_FORMAT, "preset": preset.to_dict(), "state": state}, tmp)
    _add_sum(folder, path)
    return {"file": path.name, "sha256": sha256(path), "preset": preset.name}


def load_weights(name):
    """The net of the recorded weights ``name``: built from its preset, loaded in fp32, in eval mode.

    The file's hash is checked against SHA256SUMS and it is read with ``weights_only=True``; a damaged file or
    one whose tensors do not fit the preset's net is one sentence.
    """
    path = find(name if Path(name).suffix else f"{name}.pt")
    if path is None:
        raise checks.refuse(f"weights {name!r} are not recorded here; train and record them first")
    verify(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise checks.refuse(f"weights {path.name!r} cannot be read ({type(e).__name__}): the file is damaged") from None
    if not isinstance(saved, dict) or saved.get("format") != WEIGHTS_FORMAT:
        raise checks.refuse(f"weights {path.name!r} were not written by nin_lib.records.save_weights")
    net = Preset(**saved["preset"]).build_net()
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in saved["state"].items()})
    except RuntimeError:
        raise checks.refuse(f"weights {path.name!r} do not fit the net of their preset "
                            f"{saved['preset']['name']!r}") from None
    return net.eval()


# ---------------------------------------------------------------------------------------------
# Listing records and bringing them in (``python -m nin_lib records list | import``)

def _read_record(path):
    """The JSON of a record file as a dict, or None when it is not valid JSON or not a dict."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _about(record):
    """One line about a record of either kind (what ``records list`` prints beside its name)."""
    try:
        if record.get("format") == RECORD_FORMAT:
            return describe(record)
        configs, seeds = record["configs"], record["seeds"]
        return (f"grid of {len(configs)} configuration(s) x {len(seeds)} seed(s), {record['mode']} mode, on "
                f"{record['device']}, {str(record['created'])[:10]}"
                + ("" if record.get("complete") else ", cut short (incomplete)"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return "a record whose fields cannot be read"


def listing(folder):
    """The records in ``folder``, sorted by name: a dict each with name, kind ('run' or 'experiments'),
    about (one line), problem (None, or the sentence of a failed hash check) and, for a run, its weights file
    and whether that file is there and checks out."""
    folder = Path(folder)
    entries = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        kind = _kind(path)
        if kind is None:
            continue
        record = _read_record(path)
        entry = {"name": path.stem, "kind": kind, "about": _about(record), "problem": _problem(path),
                 "weights": (record.get("weights") or {}).get("file") if kind == "run" else None}
        if entry["weights"]:
            weights = folder / entry["weights"]
            entry["weights_problem"] = (_problem(weights) if weights.is_file() else
                                        f"weights {entry['weights']!r} are not in this folder.")
        entries.append(entry)
    return entries


def _problem(path):
    """None if ``path`` checks out against its folder's SHA256SUMS, else the sentence saying why not."""
    try:
        verify(path)
    except ValueError as e:
        return str(e)
    return None


def _import_plan(source, names, weights):
    """The files ``import_records`` would copy from ``source``, in order, each checked (one sentence if one fails)."""
    available = [p.name for p in sorted(source.glob("*.json")) if _kind(p) is not None]
    if names is None:
        if not available:
            raise checks.refuse(f"folder {str(source)!r} holds no records to import")
        names = available
    plan, pairs = [], []  # the files in order; (record, its weights entry) to check against each other
    for name in names:
        if not name or Path(name).name != name:
            raise checks.refuse(f"name {name!r} is not a file name; give a record's name or a weights file's, "
                                "without a folder")
        filename = name if Path(name).suffix else f"{name}.json"
        if Path(filename).suffix == ".pt":
            if not (source / filename).is_file():
                raise checks.refuse(f"weights {filename!r} are not in {str(source)!r}")
            plan.append(filename)
            continue
        if filename not in available:
            raise checks.refuse(f"record {name!r} is not in {str(source)!r}; the records there are: "
                                f"{', '.join(Path(a).stem for a in available) or 'none'}")
        plan.append(filename)
        entry = _read_record(source / filename).get("weights") or {}
        if weights and entry.get("file"):
            if not (source / entry["file"]).is_file():
                raise checks.refuse(f"record {filename!r} names the weights {entry['file']!r}, which are not in "
                                    f"{str(source)!r}; copy them beside it, or import the record without weights")
            plan.append(entry["file"])
            pairs.append((filename, entry))
    plan = list(dict.fromkeys(plan))
    for filename in plan:
        verify(source / filename)
    for filename, entry in pairs:
        if entry.get("sha256") and sha256(source / entry["file"]) != entry["sha256"]:
            raise checks.refuse(f"weights {entry['file']!r} are not the ones record {filename!r} was written "
                                "with (their sha256 differs from the one in the record)")
    return plan


def import_records(source, names=None, *, into=None, weights=True):
    """Copy records from folder ``source`` (a GPU run's output) into ``into`` (default: the package's records).

    ``names``: record names (``d2l-gpu-seed-0`` or ``d2l-gpu-seed-0.json``) and weights files (``….pt``); None
    means every record there. A record brings the weights it names unless ``weights`` is False, so
    ``weights=False`` with the names of all records plus one ``….pt`` keeps only that seed's weights.
    Every file is checked against ``source``'s SHA256SUMS first: a missing, unlisted or changed file is one
    sentence and nothing is copied. Each copy is written atomically and listed in ``into``'s SHA256SUMS.
    Returns the names of the files copied.
    """
    source = Path(source)
    into = Path(into) if into is not None else PACKAGED
    if not source.is_dir():
        raise checks.refuse(f"folder {str(source)!r} does not exist; give the folder that holds the records "
                            f"and their {SUMS}")
    if source.resolve() == into.resolve():
        raise checks.refuse(f"folder {str(source)!r} is where the records would go; import from another folder")
    plan = _import_plan(source, None if names is None else list(names), weights)
    expected = _sums(source)
    for filename in plan:
        with runtime.atomic_path(into / filename) as tmp:
            shutil.copyfile(source / filename, tmp)
            if sha256(tmp) != expected[filename]:
                raise checks.refuse(f"file {filename!r} changed while it was being copied; import it again")
        _add_sum(into, into / filename)
    return plan
