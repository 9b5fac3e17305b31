"""Reliability (docs/RELIABILITY.md): bad inputs through the library, the command line and the widgets,
and faults (an interrupt, a diverging run, a broken download, no network, out of memory, a full disk).

Every bad input must end in one sentence naming the value and what is allowed (library: ValueError;
command line: exit status 2, one line on stderr, no traceback; widgets: a message in the panel), and
nothing half-written may be left behind. Every case is recorded, with the items it lost, into
a temporary file (or ``NIN_RELIABILITY_RECORD``); ``python tools/reliability_report.py`` turns that file into the
tables and totals of docs/RELIABILITY.md, and the last test checks that the document matches this run.
All runs are tiny (conftest.tiny_run: a 28-px NiN at a tenth of the width, a few hundred images) and on the CPU.
"""
import contextlib
import errno
import gzip
import html
import importlib.util
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import finite, numbers, quiet, same_weights, tiny_run, weights
from nin_lib import cli, d2l, data, models, presets, runtime, train

W = pytest.importorskip("ipywidgets")
traitlets = pytest.importorskip("traitlets")
from nin_lib import widgets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# where the cases are recorded: NIN_RELIABILITY_RECORD (tools/reliability_report.py reads it from there), or a
# temporary folder, so a test run writes nothing into the repository
REPORT = Path(os.environ.get("NIN_RELIABILITY_RECORD") or
              Path(tempfile.mkdtemp(prefix="nin-reliability-")) / "reliability.json")
DOC = ROOT / "docs" / "RELIABILITY.md"


# The rows of the bad-input matrix: key, group, the input in words.
INPUTS = [
    ("lr-zero", "learning rate", "learning rate 0"),
    ("lr-negative", "learning rate", "learning rate −0.1"),
    ("lr-nan", "learning rate", "learning rate NaN"),
    ("lr-inf", "learning rate", "learning rate infinity"),
    ("lr-text", "learning rate", "learning rate that is not a number"),
    ("bs-zero", "batch size", "batch size 0"),
    ("bs-negative", "batch size", "batch size −4"),
    ("bs-fraction", "batch size", "batch size that is not a whole number (2.5)"),
    ("bs-text", "batch size", "batch size given as text"),
    ("bs-over-subset", "batch size", "batch size larger than the training subset"),
    ("bs-over-data", "batch size", "batch size larger than the data (over 60,000)"),
    ("epochs-zero", "epochs", "0 epochs"),
    ("epochs-negative", "epochs", "−3 epochs"),
    ("size-small", "image size", "image size 66 for the seed's net (it needs 67)"),
    ("size-zero", "image size", "image size 0"),
    ("size-absurd", "image size", "image size 5,000 (an estimate of the memory, nothing allocated)"),
    ("size-memory", "image size", "image size 1,024 with a batch that does not fit in the free memory"),
    ("preset-unknown", "names", "unknown preset"),
    ("model-unknown", "names", "unknown model"),
    ("device-unknown", "names", "unknown device"),
    ("device-cuda-missing", "names", "`cuda` requested on a machine without a GPU"),
    ("data-dir-missing", "data", "`NIN_DATA_DIR` names a folder that does not exist (and no network)"),
    ("data-dir-file", "data", "`NIN_DATA_DIR` is a file, not a folder"),
    ("data-dir-unreadable", "data", "`NIN_DATA_DIR` cannot be read"),
    ("data-truncated", "data", "a data file truncated"),
    ("data-checksum", "data", "a data file with a wrong checksum"),
    ("data-magic", "data", "a data file with a wrong IDX magic number"),
    ("ckpt-other-model", "checkpoint", "a checkpoint from a different model"),
    ("ckpt-truncated", "checkpoint", "a checkpoint truncated"),
    ("ckpt-not-checkpoint", "checkpoint", "a file that is not a checkpoint"),
    ("ckpt-foreign", "checkpoint", "a PyTorch file that nin_lib did not write"),
]
INPUT_ORDER = {key: i for i, (key, _, _) in enumerate(INPUTS)}
INPUT_INFO = {key: (group, words) for key, group, words in INPUTS}

FAULTS = [
    ("interrupt", "an interrupt (SIGINT) in the middle of an epoch"),
    ("resume", "resuming after the interrupt"),
    ("diverge", "a diverging run (lr 10)"),
    ("download-broken", "a download that breaks half-way (server on 127.0.0.1 closes the connection)"),
    ("no-network", "no network at all"),
    ("oom", "out of memory (torch.OutOfMemoryError) during training"),
    ("disk-full", "a full disk when a checkpoint is written (OSError ENOSPC)"),
    ("disk-full-torch", "a full disk as torch.save reports it (half a file, then RuntimeError)"),
]
FAULT_ORDER = {key: i for i, (key, _) in enumerate(FAULTS)}
FAULT_INFO = dict(FAULTS)


# ---------------------------------------------------------------------------------------------
# Recording: every case goes into build/reliability.json (rewritten after each case)

class Recorder:
    """The cases of this run, by id; written to build/reliability.json after each one."""

    def __init__(self):
        self.cases = {}

    def add(self, kind, key, surface, via, how, outcome, test, lost=0, clean=()):
        info = INPUT_INFO[key] if kind == "bad input" else ("fault", FAULT_INFO[key])
        order = INPUT_ORDER[key] if kind == "bad input" else FAULT_ORDER[key]
        case = {"id": f"{surface}:{key}:{via}", "kind": kind, "key": key, "order": order, "group": info[0],
                "input": info[1], "surface": surface, "via": via, "how": how,
                "outcome": sanitize(outcome, clean), "test": test, "lost": int(lost)}
        self.cases[case["id"]] = case
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(sorted(self.cases.values(), key=lambda c: c["id"]), indent=1,
                                     ensure_ascii=False) + "\n")


RECORDER = Recorder()
EXPECTED_IDS = set()  # filled by the case tables below; the docs check needs all of them


def sanitize(text, clean=()):
    """No local paths or port numbers in the record (it goes into the docs)."""
    text = str(text)
    for path, name in sorted(clean, key=lambda pair: -len(str(pair[0]))):
        text = text.replace(str(path), name)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    return re.sub(r"(/tmp|/root|/home/[^/\s'\"]+|/Users/[^/\s'\"]+|/work)(/[^\s'\"),;]*)?", "<path>", text)


def case_test(request):
    return request.node.nodeid.split("::", 1)[1]


def one_sentence(message):
    """One sentence: one line, a full stop at the end, no second sentence inside."""
    message = message.strip()
    assert "\n" not in message, message
    assert message.endswith("."), message
    assert not re.search(r"\.\s+[A-Z]", message), message
    assert "Traceback" not in message and "Error(s) in loading state_dict" not in message, message


def snapshot(root):
    """Every file under ``root`` (symlinks not followed) with its size and modification time."""
    files = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            st = path.lstat()
            files[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return files


def changes(before, after):
    """Files created, changed or removed between two snapshots: what a failed operation left behind."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


# ---------------------------------------------------------------------------------------------
# Shared material: a data folder (links to the real files), a checkpoint, a closed port

SOURCE = None


def source_dir():
    global SOURCE
    if SOURCE is None:
        SOURCE = data.data_dir()
    return SOURCE


def data_folder(root, corrupt=None):
    """A folder with the four Fashion-MNIST files (links to the real ones); ``corrupt`` spoils train-labels."""
    folder = Path(root) / "fmnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (filename, *_r) in data.FILES.items():
        target = folder / filename
        if name == "train-labels" and corrupt:
            raw = (source_dir() / filename).read_bytes()
            if corrupt == "truncated":
                raw = raw[:1000]
            elif corrupt == "checksum":
                raw = bytearray(raw)
                raw[100] ^= 0xFF
                raw = bytes(raw)
            elif corrupt == "magic":  # a valid gzip of an IDX file with the images' magic, the right size
                idx = bytearray(gzip.decompress(raw))
                idx[3] = 0x03
                raw = gzip.compress(bytes(idx), mtime=0)
                raw = raw + bytes(len(raw) < 29515 and 29515 - len(raw))
            target.write_bytes(raw)
        else:
            target.symlink_to(source_dir() / filename)
    return folder


def bad_magic_file(root):
    """A small IDX .gz file whose magic number (0x00000802) is not an unsigned-byte one."""
    path = Path(root) / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress((0x802).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([1, 2, 3])))
    return path


def closed_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@pytest.fixture(scope="module")
def checkpoint_bytes(fmnist, tmp_path_factory):
    """A real checkpoint: one epoch of the tiny run (quick preset, width 0.25)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    tiny_run(fmnist, num_epochs=1).fit(quiet(train.Checkpoint(path)))
    return path.read_bytes()


def checkpoint_file(root, kind, checkpoint_bytes):
    """A checkpoint file of one kind: 'good', 'truncated', 'text' or 'foreign'."""
    path = Path(root) / "run.pt"
    if kind == "good":
        path.write_bytes(checkpoint_bytes)
    elif kind == "truncated":
        path.write_bytes(checkpoint_bytes[: len(checkpoint_bytes) // 2])
    elif kind == "text":
        path.write_text("epoch 3: loss 0.41, train acc 0.85\n")
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    return path


@pytest.fixture(scope="module")
def straight(fmnist):
    """The tiny run, uninterrupted: what an interrupted and resumed run must equal."""
    run = tiny_run(fmnist)
    return numbers(run.fit(quiet())), weights(run.net)


# ---------------------------------------------------------------------------------------------
# Bad inputs through the library

class Ctx:
    """What a library case may use: the data, a scratch folder, monkeypatch, a checkpoint; ``made`` registers
    the inputs a case creates, so that anything else found afterwards counts as left behind."""

    def __init__(self, fmnist, tmp, monkeypatch, checkpoint_bytes):
        self.fmnist, self.tmp, self.monkeypatch, self.checkpoint_bytes = fmnist, tmp, monkeypatch, checkpoint_bytes
        self.inputs = {}

    def made(self, path):
        path = Path(path)
        self.inputs[path] = snapshot(path) if path.is_dir() else path.lstat()[6:9:2]
        return path

    def left_behind(self):
        """Files under the scratch folder that are not the case's own inputs, or inputs that changed."""
        left = []
        for rel in snapshot(self.tmp):
            path = self.tmp / rel
            owner = next((p for p in self.inputs if p == path or p in path.parents), None)
            if owner is None or rel.endswith((".part", ".tmp")):
                left.append(rel)
        for path, state in self.inputs.items():
            now = snapshot(path) if path.is_dir() else path.lstat()[6:9:2]
            if now != state:
                left.append(f"{path.name} (changed)")
        return left

    def free_memory(self, nbytes):
        self.monkeypatch.setattr(runtime, "available_memory", lambda device: nbytes)

    def no_cuda(self):
        self.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def env_data(self, path):
        self.monkeypatch.setenv(data.DATA_ENV, str(path))

    def small_batches(self, resize=None):
        return data.Batches(self.fmnist.test_images[:64], self.fmnist.test_labels[:64], 32, resize=resize)


def _fit_lr(ctx, lr):
    net = models.nin(arch=28, width=0.25)
    train.fit(net, ctx.small_batches(), num_epochs=1, lr=lr, callbacks=quiet())


def _fit_epochs(ctx, num_epochs):
    net = models.nin(arch=28, width=0.25)
    train.fit(net, ctx.small_batches(), num_epochs=num_epochs, lr=0.1, callbacks=quiet())


def _fit_too_small(ctx):
    net = models.nin(arch=224, width=0.25)
    train.fit(net, ctx.small_batches(resize=66), num_epochs=1, lr=0.1, callbacks=quiet())


def _d2l_too_small(ctx):
    it = d2l.BookBatches(ctx.fmnist.test_images[:64], ctx.fmnist.test_labels[:64], 32, resize=66)
    d2l.train_ch6(models.nin(), it, None, 1, 0.1, "cpu")


def _memory(ctx):
    ctx.free_memory(8 * 10**9)
    presets.build_run("d2l", data=ctx.fmnist, device="cpu", resize=1024)


def _cuda(ctx):
    ctx.no_cuda()
    presets.build_run("quick", data=ctx.fmnist, device="cuda")


def _dir_missing(ctx):
    ctx.env_data(ctx.tmp / "nowhere")
    data.load_fashion_mnist(urls=[closed_url()])


def _dir_file(ctx):
    (ctx.tmp / "a-file").write_text("not a folder")
    ctx.env_data(ctx.made(ctx.tmp / "a-file"))
    data.load_fashion_mnist()


def _dir_unreadable(ctx):
    folder = ctx.made(data_folder(ctx.tmp))
    folder.chmod(0)
    ctx.monkeypatch.setattr(os, "access", _deny(folder, os.access))  # root reads anything: deny as a user would
    ctx.env_data(folder)
    try:
        data.load_fashion_mnist()
    finally:
        folder.chmod(0o755)


def _deny(folder, real_access):
    def access(path, mode, *a, **kw):
        return False if str(path).startswith(str(folder)) else real_access(path, mode, *a, **kw)
    return access


def _corrupt(ctx, kind):
    ctx.env_data(ctx.made(data_folder(ctx.tmp, corrupt=kind)))
    data.load_fashion_mnist()


def _bad_magic(ctx):
    data.read_idx_gz(ctx.made(bad_magic_file(ctx.tmp)), 0x801)


def _checkpoint(ctx, kind):
    return ctx.made(checkpoint_file(ctx.tmp, kind, ctx.checkpoint_bytes))


def _resume(ctx, kind, **overrides):
    path = _checkpoint(ctx, kind)
    run = tiny_run(ctx.fmnist, num_epochs=2, **overrides)
    run.fit(quiet(train.Checkpoint(path, resume=True, verbose=False)))


LIBRARY = [
    # key, via, call, expected part of the sentence
    ("lr-zero", "get_preset", lambda c: presets.get_preset("quick", lr=0), "learning rate 0 is not allowed; use a finite number > 0"),
    ("lr-zero", "fit", lambda c: _fit_lr(c, 0.0), "learning rate 0.0 is not allowed"),
    ("lr-negative", "get_preset", lambda c: presets.get_preset("quick", lr=-0.1), "learning rate -0.1 is not allowed"),
    ("lr-negative", "d2l.train_ch6", lambda c: d2l.train_ch6(models.nin(), None, None, 1, -0.1, "cpu"),
     "learning rate -0.1 is not allowed"),
    ("lr-nan", "get_preset", lambda c: presets.get_preset("quick", lr=float("nan")), "learning rate nan is not allowed"),
    ("lr-nan", "fit", lambda c: _fit_lr(c, float("nan")), "learning rate nan is not allowed"),
    ("lr-inf", "get_preset", lambda c: presets.get_preset("quick", lr=float("inf")), "learning rate inf is not allowed"),
    ("lr-text", "get_preset", lambda c: presets.get_preset("quick", lr="fast"), "learning rate 'fast' is not allowed"),
    ("bs-zero", "get_preset", lambda c: presets.get_preset("quick", batch_size=0), "batch_size 0 is not allowed; use a whole number from 1"),
    ("bs-zero", "d2l.load_data_fashion_mnist", lambda c: d2l.load_data_fashion_mnist(0), "batch_size 0 is not allowed"),
    ("bs-negative", "get_preset", lambda c: presets.get_preset("quick", batch_size=-4), "batch_size -4 is not allowed"),
    ("bs-negative", "data.Batches", lambda c: data.Batches(c.fmnist.test_images, c.fmnist.test_labels, -4),
     "batch_size -4 is not allowed"),
    ("bs-fraction", "get_preset", lambda c: presets.get_preset("quick", batch_size=2.5), "batch_size 2.5 is not allowed"),
    ("bs-text", "get_preset", lambda c: presets.get_preset("quick", batch_size="128"), "batch_size '128' is not allowed"),
    ("bs-over-subset", "get_preset", lambda c: presets.get_preset("quick", subset=100, batch_size=256),
     "batch_size 256 is larger than the subset of 100 training images; use a batch size of at most 100"),
    ("bs-over-data", "get_preset", lambda c: presets.get_preset("quick", batch_size=70000),
     "batch_size 70000 is not allowed; use a whole number from 1 to 60000"),
    ("bs-over-data", "data.Batches", lambda c: data.Batches(c.fmnist.test_images[:100], c.fmnist.test_labels[:100], 200),
     "batch_size 200 is larger than the 100 examples available; use at most 100"),
    ("epochs-zero", "get_preset", lambda c: presets.get_preset("quick", num_epochs=0), "num_epochs 0 is not allowed"),
    ("epochs-zero", "fit", lambda c: _fit_epochs(c, 0), "num_epochs 0 is not allowed"),
    ("epochs-negative", "get_preset", lambda c: presets.get_preset("quick", num_epochs=-3), "num_epochs -3 is not allowed"),
    ("epochs-negative", "d2l.train_ch6", lambda c: d2l.train_ch6(models.nin(), None, None, -3, 0.1, "cpu"),
     "num_epochs -3 is not allowed"),
    ("size-small", "get_preset", lambda c: presets.get_preset("d2l", resize=66), "image size 66 is too small for the d2l"),
    ("size-small", "fit", _fit_too_small, "a 66×66 input is too small for this net"),
    ("size-small", "d2l.train_ch6", _d2l_too_small, "the smallest input it accepts is 67×67"),
    ("size-zero", "get_preset", lambda c: presets.get_preset("d2l", resize=0), "resize 0 is not allowed"),
    ("size-absurd", "get_preset", lambda c: presets.get_preset("d2l", resize=5000),
     "resize 5000 is not allowed; use a whole number from 1 to 1024 (at 5000×5000 px one training step of "
     "batch_size 128 would need about 527.8 GiB)"),
    ("size-memory", "build_run", _memory, "image size 1024 with batch_size 128 needs about 21.6 GiB for one training "
     "step (estimated before allocating anything) but this cpu has only 7.5 GiB free; use a batch size of at most"),
    ("preset-unknown", "get_preset", lambda c: presets.get_preset("fast"), "preset 'fast' is not known; choose one of"),
    ("device-unknown", "pick_device", lambda c: runtime.pick_device("tpu"), "device 'tpu' is not known; choose one of"),
    ("device-unknown", "get_preset", lambda c: presets.get_preset("quick", device="gpu"), "device 'gpu' is not known"),
    ("device-cuda-missing", "build_run", _cuda, "device 'cuda' was requested but this machine has no CUDA GPU; use 'cpu'"),
    ("data-dir-missing", "load_fashion_mnist", _dir_missing, "is missing from"),
    ("data-dir-file", "load_fashion_mnist", _dir_file, "is a file, not a folder; point NIN_DATA_DIR at a folder"),
    ("data-dir-unreadable", "load_fashion_mnist", _dir_unreadable, "cannot be read (permission denied)"),
    ("data-truncated", "load_fashion_mnist", lambda c: _corrupt(c, "truncated"), "is truncated (1,000 bytes, expected 29,515)"),
    ("data-checksum", "load_fashion_mnist", lambda c: _corrupt(c, "checksum"), "has the wrong MD5 checksum"),
    ("data-magic", "load_fashion_mnist", lambda c: _corrupt(c, "magic"), "has the wrong MD5 checksum"),
    ("data-magic", "read_idx_gz", _bad_magic,
     "has IDX magic number 0x00000802, expected 0x00000801"),
    ("ckpt-other-model", "fit(resume=True)", lambda c: _resume(c, "good", width=0.5),
     "holds a different model (it was made with preset 'quick', width 0.1): 0.0.weight is"),
    ("ckpt-truncated", "fit(resume=True)", lambda c: _resume(c, "truncated"), "cannot be read"),
    ("ckpt-truncated", "load_checkpoint", lambda c: train.load_checkpoint(_checkpoint(c, "truncated")), "cannot be read"),
    ("ckpt-not-checkpoint", "load_checkpoint", lambda c: train.load_checkpoint(_checkpoint(c, "text")), "cannot be read"),
    ("ckpt-foreign", "fit(resume=True)", lambda c: _resume(c, "foreign"), "was not written by nin_lib's fit"),
]
EXPECTED_IDS.update(f"library:{key}:{via}" for key, via, _, _ in LIBRARY)


@pytest.mark.parametrize("key, via, call, says", LIBRARY, ids=[f"{k}-{v}" for k, v, _, _ in LIBRARY])
def test_bad_input_library(fmnist, tmp_path, monkeypatch, checkpoint_bytes, request, key, via, call, says):
    ctx = Ctx(fmnist, tmp_path, monkeypatch, checkpoint_bytes)
    with pytest.raises(ValueError) as info:
        call(ctx)
    message = str(info.value)
    assert says in message, message
    one_sentence(message)
    left = ctx.left_behind()  # nothing half-written: no new file, no input changed, no .part or .tmp
    RECORDER.add("bad input", key, "library", via, "ValueError", message, case_test(request), lost=len(left),
                 clean=[(tmp_path, "<tmp>"), (source_dir(), "$NIN_DATA_DIR")])
    assert not left, left


# ---------------------------------------------------------------------------------------------
# Bad inputs through the command line (each its own process; run a few at a time)

def _patch(monkeypatch, patch):
    """What a command-line case changes in this process before it runs (all undone after the case)."""
    if patch.get("no_cuda"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if patch.get("mirrors"):
        monkeypatch.setattr(data, "mirrors", lambda: patch["mirrors"])
    if patch.get("deny"):
        monkeypatch.setattr(os, "access", _deny(Path(patch["deny"]), os.access))
    if patch.get("oom_at"):
        _oom_at(monkeypatch, patch["oom_at"])
    if patch.get("enospc_at"):
        _fail_save(monkeypatch, patch["enospc_at"])


TRAIN = ("train", "--device", "cpu", "--no-progress", "--subset", "128", "--batch-size", "64", "--test-subset", "64")


def _cli_data(root, corrupt=None):
    return {"env": {data.DATA_ENV: str(data_folder(root, corrupt))}}


def _cli_file(root):
    (Path(root) / "a-file").write_text("not a folder")
    return {"env": {data.DATA_ENV: str(Path(root) / "a-file")}}


def _cli_unreadable(root):
    folder = data_folder(root)  # locked (chmod 0) only while the command runs
    return {"env": {data.DATA_ENV: str(folder)}, "patch": {"deny": str(folder)}, "lock": folder}


def _cli_ckpt(root, kind, checkpoint_bytes):
    path = checkpoint_file(root, kind, checkpoint_bytes)
    return {"args": ("--checkpoint", str(path), "--resume")}


CLI = [
    # key, arguments, setup(root, checkpoint_bytes) -> extra, expected part of the one line
    ("lr-zero", TRAIN + ("--lr", "0"), None, "learning rate 0.0 is not allowed"),
    ("lr-negative", TRAIN + ("--lr", "-0.1"), None, "learning rate -0.1 is not allowed"),
    ("lr-nan", TRAIN + ("--lr", "nan"), None, "learning rate nan is not allowed"),
    ("lr-inf", TRAIN + ("--lr", "inf"), None, "learning rate inf is not allowed"),
    ("lr-text", TRAIN + ("--lr", "fast"), None, "argument --lr: 'fast' is not a number"),
    ("bs-zero", TRAIN + ("--batch-size", "0"), None, "batch_size 0 is not allowed"),
    ("bs-negative", TRAIN + ("--batch-size", "-4"), None, "batch_size -4 is not allowed"),
    ("bs-fraction", TRAIN + ("--batch-size", "2.5"), None, "argument --batch-size: '2.5' is not a whole number"),
    ("bs-text", TRAIN + ("--batch-size", "many"), None, "argument --batch-size: 'many' is not a whole number"),
    ("bs-over-subset", TRAIN + ("--batch-size", "256"), None, "batch_size 256 is larger than the subset of 128"),
    ("bs-over-data", ("train", "--device", "cpu", "--batch-size", "70000"), None,
     "batch_size 70000 is not allowed; use a whole number from 1 to 60000"),
    ("epochs-zero", TRAIN + ("--epochs", "0"), None, "num_epochs 0 is not allowed"),
    ("epochs-negative", TRAIN + ("--epochs", "-3"), None, "num_epochs -3 is not allowed"),
    ("size-small", TRAIN + ("--preset", "d2l", "--resize", "66"), None, "the smallest input it accepts is 67×67"),
    ("size-small", ("trace", "--input-size", "66"), None, "a 66×66 input is too small for this net"),
    ("size-zero", TRAIN + ("--resize", "0"), None, "resize 0 is not allowed"),
    ("size-absurd", TRAIN + ("--preset", "d2l", "--resize", "5000"), None,
     "resize 5000 is not allowed; use a whole number from 1 to 1024 (at 5000×5000 px one training step of "
     "batch_size 64 would need about 263.9 GiB)"),
    ("size-memory", ("train", "--device", "cpu", "--preset", "d2l", "--resize", "1024", "--batch-size", "60000"),
     None, "image size 1024 with batch_size 60000 needs about 10,099.5 GiB for one training step"),
    ("preset-unknown", TRAIN + ("--preset", "fast"), None, "preset 'fast' is not known"),
    ("model-unknown", ("trace", "--model", "vgg"), None, "argument --model: invalid choice: 'vgg'"),
    ("device-unknown", ("train", "--device", "tpu"), None, "argument --device: invalid choice: 'tpu'"),
    ("device-cuda-missing", ("train", "--device", "cuda"), lambda r, c: {"patch": {"no_cuda": True}},
     "device 'cuda' was requested but this machine has no CUDA GPU"),
    ("data-dir-missing", TRAIN, lambda r, c: {"env": {data.DATA_ENV: str(Path(r) / "nowhere")},
                                             "patch": {"mirrors": [closed_url()]}},
     "train-images-idx3-ubyte.gz is missing from"),
    ("data-dir-file", TRAIN, lambda r, c: _cli_file(r), "is a file, not a folder"),
    ("data-dir-unreadable", TRAIN, lambda r, c: _cli_unreadable(r), "cannot be read (permission denied)"),
    ("data-truncated", TRAIN, lambda r, c: _cli_data(r, "truncated"), "is truncated (1,000 bytes, expected 29,515)"),
    ("data-checksum", TRAIN, lambda r, c: _cli_data(r, "checksum"), "has the wrong MD5 checksum"),
    ("data-magic", TRAIN, lambda r, c: _cli_data(r, "magic"), "has the wrong MD5 checksum"),
    ("ckpt-other-model", TRAIN + ("--preset", "d2l"), lambda r, c: _cli_ckpt(r, "good", c),
     "holds a different model (it was made with preset 'quick', width 0.1)"),
    ("ckpt-truncated", TRAIN, lambda r, c: _cli_ckpt(r, "truncated", c), "cannot be read"),
    ("ckpt-not-checkpoint", TRAIN, lambda r, c: _cli_ckpt(r, "text", c), "cannot be read"),
    ("ckpt-foreign", TRAIN, lambda r, c: _cli_ckpt(r, "foreign", c), "was not written by nin_lib's fit"),
]
CLI_IDS = [f"{key}-{args[0]}" if key == "size-small" else key for key, args, _, _ in CLI]
EXPECTED_IDS.update(f"command line:{key}:{'python -m nin_lib ' + args[0]}" for key, args, _, _ in CLI)

FAULT_JOBS = {
    # the command-line faults that run alongside: a simulated out-of-memory and a full disk
    "oom": (TRAIN + ("--epochs", "2", "--checkpoint", "run.pt", "--out", "out"), {"oom_at": 4}),
    "disk-full": (TRAIN + ("--epochs", "2", "--checkpoint", "run.pt", "--out", "out"), {"enospc_at": 2}),
}


def _job(root, args, extra):
    """Run ``python -m nin_lib`` in this process (``cli.main``) in folder ``root``: its exit status, what it printed,
    and the files before and after."""
    before = snapshot(root)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for name, value in extra.get("env", {}).items():
            mp.setenv(name, value)
        _patch(mp, extra.get("patch", {}))
        if extra.get("lock"):
            extra["lock"].chmod(0)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main([*args, *extra.get("args", ())])
        finally:
            if extra.get("lock"):
                extra["lock"].chmod(0o755)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue()), before, snapshot(root)


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory, checkpoint_bytes):
    """Run every command-line case (and the two simulated faults), one after the other in this process."""
    results = {}
    for case_id, (key, args, setup, _) in zip(CLI_IDS, CLI):
        root = tmp_path_factory.mktemp(f"cli-{case_id}")
        extra = setup(root, checkpoint_bytes) if setup else {}
        results[case_id] = (root, *_job(root, args, extra))
    for key, (args, patch) in FAULT_JOBS.items():
        root = tmp_path_factory.mktemp(f"cli-fault-{key}")
        results[f"fault-{key}"] = (root, *_job(root, args, {"patch": patch}))
    return results


@pytest.mark.parametrize("case_id, key, args, says", [(i, k, a, s) for i, (k, a, _, s) in zip(CLI_IDS, CLI)],
                         ids=CLI_IDS)
def test_bad_input_cli(cli_results, request, case_id, key, args, says):
    root, r, before, after = cli_results[case_id]
    line = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert says in line, line
    assert len(line.splitlines()) == 1 and "Traceback" not in r.stderr
    assert line.startswith("error: ")
    one_sentence(line)
    left = changes(before, after)  # no runs/ folder, no history, no checkpoint touched, no .part file
    RECORDER.add("bad input", key, "command line", f"python -m nin_lib {args[0]}", "exit 2",
                 line[len("error: "):], case_test(request), lost=len(left),
                 clean=[(root, "<tmp>"), (source_dir(), "$NIN_DATA_DIR")])
    assert not left, left


# ---------------------------------------------------------------------------------------------
# Bad inputs through the widgets

def training_panel(fmnist, preset="quick"):
    return widgets.TrainingPanel(fmnist, preset=preset, device="cpu", subset=1000, test_subset=200)


def _panel_message(panel):
    """Press Train; the panel must refuse, start nothing and show one sentence."""
    assert panel.train() is False
    assert panel.thread is None and panel.history is None
    status = panel.status.value
    assert "Not possible" in status
    text = html.unescape(re.sub(r"<[^>]+>", "", status)).replace("Not possible:", "").strip()
    assert text == panel.error
    return text


def _set(panel, **values):
    for name, value in values.items():
        panel.controls[name].value = value
    return _panel_message(panel)


def _kept(control, value):
    """Set a control to a bad value: the control itself keeps it out (clamps it or refuses it)."""
    before = control.value
    try:
        control.value = value
    except traitlets.TraitError:
        return f"the control refuses {value!r} and keeps {before!r}"
    return f"the control turns {value!r} into {control.value!r}"


def _w_lr(fm, value):
    panel = training_panel(fm)
    said = _kept(panel.controls["lr"], value)
    panel.settings()  # what it kept is a valid setting
    return said


def _w_cuda(fm, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return _set(training_panel(fm), device="cuda")


def _w_memory(fm, monkeypatch):
    monkeypatch.setattr(runtime, "available_memory", lambda device: 8 * 10**9)
    return _set(training_panel(fm, "d2l"), resize=1024)


def _experiment(fm, **values):
    panel = widgets.ExperimentPanel(fm)
    for name, value in values.items():
        panel.controls[name].value = value
    assert panel.train() is False and panel.runs == []
    assert "Not possible" in panel.message
    return html.unescape(re.sub(r"<[^>]+>", "", panel.message)).replace("Not possible:", "").strip()


def _input_size(size):
    panel = widgets.input_size_panel(input_size=size)
    result = panel.result()
    assert len(result) == 1 and "Not possible" in result[0].data
    return html.unescape(re.sub(r"<[^>]+>", "", result[0].data)).replace("Not possible:", "").strip()


WIDGETS = [
    # key, panel, call(fmnist, monkeypatch) -> the sentence shown (or what the control did), how, expected
    ("lr-zero", "training panel", lambda f, m: _w_lr(f, 0.0), "kept out by the control",
     "the control turns 0.0 into 0.0001"),
    ("lr-zero", "experiment panel", lambda f, m: _experiment(f, lr=0.0), "message in the panel",
     "learning rate 0.0 is not allowed"),
    ("lr-negative", "training panel", lambda f, m: _w_lr(f, -0.1), "kept out by the control",
     "the control turns -0.1 into 0.0001"),
    ("lr-negative", "experiment panel", lambda f, m: _experiment(f, lr=-0.1), "message in the panel",
     "learning rate -0.1 is not allowed"),
    ("lr-nan", "training panel", lambda f, m: _set(training_panel(f), lr=float("nan")), "message in the panel",
     "learning rate nan is not allowed"),
    ("lr-nan", "experiment panel", lambda f, m: _experiment(f, lr=float("nan")), "message in the panel",
     "learning rate nan is not allowed"),
    ("lr-inf", "experiment panel", lambda f, m: _experiment(f, lr=float("inf")), "message in the panel",
     "learning rate inf is not allowed"),
    ("lr-text", "experiment panel", lambda f, m: _kept(widgets.ExperimentPanel(f).controls["lr"], "fast"),
     "kept out by the control", "the control refuses 'fast'"),
    ("bs-zero", "training panel", lambda f, m: _set(training_panel(f), batch_size=0), "message in the panel",
     "batch_size 0 is not allowed"),
    ("bs-negative", "training panel", lambda f, m: _set(training_panel(f), batch_size=-4), "message in the panel",
     "batch_size -4 is not allowed"),
    ("bs-fraction", "training panel", lambda f, m: _kept(training_panel(f).controls["batch_size"], 2.5),
     "kept out by the control", "the control turns 2.5 into 2"),
    ("bs-text", "training panel", lambda f, m: _kept(training_panel(f).controls["batch_size"], "many"),
     "kept out by the control", "the control refuses 'many'"),
    ("bs-over-subset", "training panel", lambda f, m: _set(training_panel(f), batch_size=2000), "message in the panel",
     "batch_size 2000 is larger than the subset of 1000 training images"),
    ("bs-over-data", "training panel", lambda f, m: _set(training_panel(f), subset=None, batch_size=70000),
     "message in the panel", "batch_size 70000 is not allowed; use a whole number from 1 to 60000"),
    ("epochs-zero", "training panel", lambda f, m: _kept(training_panel(f).controls["num_epochs"], 0),
     "kept out by the control", "the control turns 0 into 1"),
    ("epochs-negative", "experiment panel", lambda f, m: _kept(widgets.ExperimentPanel(f).controls["num_epochs"], -3),
     "kept out by the control", "the control turns -3 into 1"),
    ("size-small", "training panel", lambda f, m: _set(training_panel(f, "d2l"), resize=66), "message in the panel",
     "image size 66 is too small for the d2l preset's net"),
    ("size-small", "input-size panel", lambda f, m: _input_size(66), "message in the panel",
     "a 66×66 input is too small for this net"),
    ("size-zero", "training panel", lambda f, m: _set(training_panel(f), resize=0), "message in the panel",
     "resize 0 is not allowed"),
    ("size-absurd", "training panel", lambda f, m: _set(training_panel(f, "d2l"), resize=5000), "message in the panel",
     "would need about 527.8 GiB"),
    ("size-memory", "training panel", _w_memory, "message in the panel",
     "image size 1024 with batch_size 128 needs about 21.6 GiB"),
    ("device-cuda-missing", "training panel", _w_cuda, "message in the panel",
     "device 'cuda' was requested but this machine has no CUDA GPU"),
]
WIDGET_IDS = [f"{k}-{p.split()[0]}" for k, p, _, _, _ in WIDGETS]
EXPECTED_IDS.update(f"widgets:{key}:{panel}" for key, panel, _, _, _ in WIDGETS)


@pytest.mark.parametrize("key, panel, call, how, says", WIDGETS, ids=WIDGET_IDS)
def test_bad_input_widget(fmnist, monkeypatch, request, key, panel, call, how, says):
    text = call(fmnist, monkeypatch)
    assert says in text, text
    if how == "message in the panel":
        one_sentence(text)
    RECORDER.add("bad input", key, "widgets", panel, how, text, case_test(request))


# ---------------------------------------------------------------------------------------------
# Faults

class EachEpoch(train.Callback):
    """Call ``fn(record)`` after every epoch, once its checkpoint is written."""
    order = 60  # after train.Checkpoint

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, run):
        self.fn(run.record)


class Signal(train.Callback):
    """Send this process a real SIGINT after a given batch of a given epoch (Ctrl-C, or the kernel's ■)."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, run):
        if (run.epoch + 1, run.batch) == (self.epoch, self.batch):
            signal.raise_signal(signal.SIGINT)


@pytest.fixture(scope="module")
def interrupted(fmnist, tmp_path_factory):
    """The tiny run, interrupted by SIGINT in epoch 2, batch 2, with a checkpoint."""
    folder = tmp_path_factory.mktemp("interrupt")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = tiny_run(fmnist)
        history = run.fit(quiet(train.Checkpoint(folder / "run.pt"), Signal(2, 2)))
    finally:
        signal.signal(signal.SIGINT, previous)
    return folder, run, history


def fault(request, key, surface, via, outcome, lost, clean=()):
    RECORDER.add("fault", key, surface, via, "survived", outcome, case_test(request), lost=lost, clean=clean)
    assert lost == 0


EXPECTED_IDS.update({"library:interrupt:fit", "library:resume:fit(resume=True)", "library:diverge:fit",
                     "library:download-broken:find", "library:no-network:load_fashion_mnist", "library:oom:fit",
                     "library:disk-full:fit", "library:disk-full-torch:fit", "widgets:oom:training panel",
                     "command line:interrupt:python -m nin_lib train", "command line:oom:python -m nin_lib train",
                     "command line:disk-full:python -m nin_lib train"})


def test_fault_interrupt_keeps_model_history_and_checkpoint(interrupted, request):
    folder, run, history = interrupted
    assert history.stopped and history.reason.startswith("interrupted (KeyboardInterrupt) in epoch 2, batch 2/4")
    assert history.completed_epochs == 1 and history.last["partial"] and history.last["images"] == 128
    state = train.load_checkpoint(folder / "run.pt")
    lost = (state["epoch"] != 1) + (len(state["history"]["epochs"]) != 1) + (not finite(run.net))
    lost += len(list(folder.glob("*.tmp")))
    assert not same_weights(weights(run.net), state["model"])  # the net keeps the two batches after the checkpoint
    fault(request, "interrupt", "library", "fit", history.reason, lost)


def test_fault_resume_equals_an_uninterrupted_run(interrupted, straight, fmnist, request):
    folder, _, _ = interrupted
    resumed = tiny_run(fmnist)
    history = resumed.fit(quiet(train.Checkpoint(folder / "run.pt", resume=True, verbose=False)))
    same = numbers(history) == straight[0] and same_weights(weights(resumed.net), straight[1])
    assert same
    fault(request, "resume", "library", "fit(resume=True)",
          f"resumed after epoch 1: {len(history)} epochs whose loss, accuracies and weights equal the "
          f"uninterrupted run's exactly", lost=int(not same))


DIVERGE = dict(name="diverge", arch=28, width=0.25, batch_norm=False, dropout=0.0, num_1x1=2, final_relu=True,
               init="xavier", lr=10.0, momentum=0.9, schedule="constant", batch_size=16, num_epochs=3, resize=None,
               subset=256, test_subset=128, eval_batch_size=128, device="cpu")


def test_fault_diverging_run_stops_and_keeps_the_last_good_weights(fmnist, request):
    for seed in range(3):  # lr 10 diverges to NaN on every seed tried here; a net whose ReLUs die instead
        run = presets.build_run(presets.Preset(**DIVERGE, seed=seed), data=fmnist)  # would not: try another
        start = weights(run.net)
        history = run.fit(quiet())
        assert finite(run.net)
        if history.stopped:
            break
    assert history.stopped and "the training loss became" in history.reason
    assert "the learning rate is probably too high" in history.reason and "were restored" in history.reason
    assert finite(run.net)
    restored = same_weights(weights(run.net), start) if history.completed_epochs == 0 else True
    assert restored
    fault(request, "diverge", "library", "fit", history.reason, lost=int(not finite(run.net)))


class BreakingServer:
    """HTTP on 127.0.0.1: the first reply sends half the file and closes the connection; later ones all of it."""

    def __init__(self, payload):
        self.payload, self.replies = payload, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                body = self.payload if self.replies else self.payload[: len(self.payload) // 2]
                self.replies += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.payload) + body)

    def close(self):
        self.sock.close()


def test_fault_download_broken_half_way_then_retry(tmp_path, request):
    payload = (source_dir() / "t10k-labels-idx1-ubyte.gz").read_bytes()
    server = BreakingServer(payload)
    target = tmp_path / "cache"
    try:
        with pytest.raises(data.DataError) as info:
            data.find("test-labels", target, urls=[server.url])
        left = list(target.iterdir())  # no partial file that could later pass as valid
        path = data.find("test-labels", target, urls=[server.url])
    finally:
        server.close()
    message = str(info.value)
    assert "the download stopped after 2,574 of 5,148 bytes" in message
    one_sentence(message)
    assert data.check_file(path, "test-labels") == path and server.replies == 2
    assert [p.name for p in target.iterdir()] == ["t10k-labels-idx1-ubyte.gz"]
    fault(request, "download-broken", "library", "find", message + " Then a retry downloads the whole file.",
          lost=len(left), clean=[(tmp_path, "<tmp>")])


def test_fault_no_network_names_the_files_and_the_folder(tmp_path, request):
    folder = tmp_path / "empty"
    with pytest.raises(data.DataError) as info:
        data.load_fashion_mnist(folder, urls=[closed_url()])
    message = str(info.value)
    for filename, *_r in data.FILES.values():
        assert filename in message
    assert f"put it in {str(folder)!r}" in message and "NIN_DATA_DIR" in message
    one_sentence(message)
    fault(request, "no-network", "library", "load_fashion_mnist", message,
          lost=len([p for p in folder.rglob("*") if p.is_file()]), clean=[(tmp_path, "<tmp>")])


def _oom_at(monkeypatch, n):
    """Make the n-th forward pass (runtime.autocast) raise torch.OutOfMemoryError, as a too-big batch on a GPU does."""
    calls, real = [0], runtime.autocast

    def autocast(device, enabled):
        calls[0] += 1
        if calls[0] == n:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(device, enabled)
    monkeypatch.setattr(runtime, "autocast", autocast)


def test_fault_out_of_memory_becomes_advice(fmnist, tmp_path, monkeypatch, request):
    run = tiny_run(fmnist)
    _oom_at(monkeypatch, 4 + 1 + 3)  # epoch 1 (4 batches), its evaluation, then batch 3 of epoch 2
    history = run.fit(quiet(train.Checkpoint(tmp_path / "run.pt")))
    assert history.stopped
    assert history.reason.startswith("out of memory on cpu in epoch 2, batch 3/4 (a batch of 64 images of 28×28 px); "
                                     "use a smaller batch size or image size and train again")
    assert history.completed_epochs == 1 and history.last["partial"] and history.last["images"] == 128
    lost = (train.load_checkpoint(tmp_path / "run.pt")["epoch"] != 1) + (not finite(run.net))
    fault(request, "oom", "library", "fit", history.reason, lost=lost + len(list(tmp_path.glob("*.tmp"))))


def test_fault_out_of_memory_in_the_panel(fmnist, monkeypatch, request):
    panel = training_panel(fmnist)
    panel.controls["num_epochs"].value = 1
    panel.controls["batch_size"].value = 100
    _oom_at(monkeypatch, 3)  # the panel's first count of predicted classes, batch 1, then batch 2
    assert panel.train() is True
    history = panel.wait(timeout=300)
    assert not panel.running and panel.error is None and history.stopped
    status = html.unescape(re.sub(r"<[^>]+>", "", panel.status.value))
    assert "out of memory on cpu in epoch 1, batch 2/10 (a batch of 100 images of 28×28 px)" in status
    assert "use a smaller batch size or image size" in status and "Traceback" not in status
    assert not panel.train_button.disabled and panel.stop_button.disabled  # ready for the next try
    fault(request, "oom", "widgets", "training panel", status, lost=int(panel.net is None or not finite(panel.net)))


def _fail_save(monkeypatch, n, torch_style=False):
    """Make the n-th torch.save fail as on a full disk: OSError ENOSPC, or (torch_style) half a file then
    the RuntimeError torch.save really raises there."""
    calls, real = [0], torch.save

    def save(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] != n:
            return real(obj, f, *a, **k)
        if not torch_style:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        Path(f).write_bytes(b"PK\x03\x04" + bytes(500))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("key", ["disk-full", "disk-full-torch"])
def test_fault_full_disk_keeps_the_previous_checkpoint(fmnist, tmp_path, monkeypatch, request, key):
    ckpt = tmp_path / "run.pt"
    run = tiny_run(fmnist)
    _fail_save(monkeypatch, 2, torch_style=key == "disk-full-torch")
    kept = {}
    history = run.fit(quiet(EachEpoch(lambda record: kept.setdefault(record["epoch"], ckpt.read_bytes())),
                            train.Checkpoint(ckpt)))
    assert history.stopped and len(history) == 2 and history.completed_epochs == 2
    assert f"checkpoint {str(ckpt)!r} could not be written (" in history.reason
    assert "the previous checkpoint there is unchanged; free some disk space or choose another path" in history.reason
    assert "training stopped after epoch 2 and the model keeps its weights" in history.reason
    if key == "disk-full":
        assert "(No space left on device)" in history.reason
    intact = ckpt.read_bytes() == kept[1] and train.load_checkpoint(ckpt)["epoch"] == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run.pt"]
    assert intact and finite(run.net)
    fault(request, key, "library", "fit", history.reason, lost=len(leftovers) + (not intact),
          clean=[(tmp_path, "<tmp>")])


def test_save_checkpoint_on_a_full_disk_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(train.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    _fail_save(monkeypatch, 1, torch_style=True)
    with pytest.raises(train.CheckpointError, match=r"could not be written \(the disk is full: 0.0 MiB free\); "
                                                    "no checkpoint was written"):
        train.save_checkpoint(tmp_path / "x.pt", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def _real_tmpfs(folder):
    """Mount a 4 MiB tmpfs (needs root and permission); None where that is not possible."""
    folder.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return None
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    return folder if r.returncode == 0 else None


def test_a_really_full_disk(fmnist, tmp_path):
    """The same on a real full file system (a tiny tmpfs, filled after the first checkpoint); skipped where
    mounting one is not allowed."""
    disk = _real_tmpfs(tmp_path / "disk")
    if disk is None:
        pytest.skip("cannot mount a small tmpfs here (needs root); the simulated full disk tests cover it")
    try:
        ckpt = disk / "run.pt"
        kept = {}

        def fill(record):
            kept[record["epoch"]] = ckpt.read_bytes()
            with open(disk / "filler", "wb", buffering=0) as f:
                with pytest.raises(OSError):
                    while True:
                        f.write(bytes(4096))

        history = tiny_run(fmnist, num_epochs=3).fit(quiet(EachEpoch(fill), train.Checkpoint(ckpt)))
        assert history.stopped and "could not be written" in history.reason
        assert ckpt.read_bytes() == kept[1] and not (disk / "run.pt.tmp").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# -- the same faults through the command line --------------------------------------------------

def _cli_history(root):
    return json.loads((root / "out" / "history.json").read_text())


def test_fault_cli_out_of_memory_becomes_advice(cli_results, request):
    root, r, _, _ = cli_results["fault-oom"]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    advice = next(line for line in r.stdout.splitlines() if line.startswith("out of memory"))
    assert advice.startswith("out of memory on cpu in epoch 2, batch 1/2 (a batch of 64 images of 28×28 px); "
                             "use a smaller batch size or image size")
    lost = (len(_cli_history(root)["epochs"]) != 1) + (train.load_checkpoint(root / "run.pt")["epoch"] != 1)
    fault(request, "oom", "command line", "python -m nin_lib train", advice, lost=lost + len(list(root.glob("*.tmp"))))


def test_fault_cli_full_disk(cli_results, request):
    root, r, _, _ = cli_results["fault-disk-full"]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    line = next(line for line in r.stdout.splitlines() if line.startswith("checkpoint "))
    assert "could not be written (No space left on device); the previous checkpoint there is unchanged" in line
    lost = (len(_cli_history(root)["epochs"]) != 2) + (train.load_checkpoint(root / "run.pt")["epoch"] != 1)
    fault(request, "disk-full", "command line", "python -m nin_lib train", line,
          lost=lost + len(list(root.glob("*.tmp"))), clean=[(root, "<tmp>")])


def test_fault_cli_interrupt(tmp_path, request):
    args = ("train", "--device", "cpu", "--no-progress", "--subset", "1024", "--batch-size", "32", "--test-subset",
            "64", "--epochs", "3", "--checkpoint", "run.pt", "--out", "out")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nin_lib", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timer = threading.Timer(600, proc.kill)
    timer.start()
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("epoch 1/3"):
                time.sleep(0.3)  # inside epoch 2 (32 batches) on any machine seen so far
                proc.send_signal(signal.SIGINT)  # Ctrl-C
                break
        out, err = proc.communicate()
    finally:
        timer.cancel()
    lines += out.splitlines(keepends=True)
    assert proc.returncode == 1 and "Traceback" not in err, err[-2000:]
    reason = next(line.strip() for line in lines if line.startswith("interrupted (KeyboardInterrupt) in epoch"))
    history = _cli_history(tmp_path)
    assert history["stopped"] and history["epochs"][0]["epoch"] == 1 and not history["epochs"][0].get("partial")
    assert all(e.get("partial") for e in history["epochs"][1:])  # epoch 2 cut short, if the signal came in it
    lost = (train.load_checkpoint(tmp_path / "run.pt")["epoch"] != 1) + len(list(tmp_path.glob("*.tmp")))
    fault(request, "interrupt", "command line", "python -m nin_lib train", reason, lost=lost)


# ---------------------------------------------------------------------------------------------
# The document: its totals and rows are this run's (keep this test last in the file)

def _report_tool():
    spec = importlib.util.spec_from_file_location("reliability_report", ROOT / "tools" / "reliability_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_match_the_recorded_cases():
    missing = EXPECTED_IDS - set(RECORDER.cases)
    if missing:
        pytest.skip(f"{len(missing)} case(s) did not run in this test run (run the whole file to check the docs)")
    tool = _report_tool()
    cases = list(RECORDER.cases.values())
    doc = DOC.read_text()
    hint = "docs/RELIABILITY.md is stale: run the tests, then python tools/reliability_report.py"
    assert tool.read_totals(doc) == tool.totals(cases), hint
    for case in cases:
        assert case["test"] in doc, f"{hint} ({case['test']} is not in it)"
    assert tool.totals(cases)["items lost"] == 0
    assert math.isclose(len(cases), sum(v for k, v in tool.totals(cases).items() if k != "items lost"))
