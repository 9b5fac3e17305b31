"""Named, validated hyper-parameter sets (lesson 05): ``d2l``, ``improved`` and ``quick``.

>>> p = get_preset("quick").with_overrides(num_epochs=2)
>>> run = build_run(p)            # net, optimiser, scheduler, batches on the device
>>> history = run.fit()

Every value is checked when a preset is made or changed: a bad one raises ValueError with one
sentence naming the value and what is allowed.
"""
import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass, fields

import torch
from torch import nn

from . import data as data_mod
from . import models, runtime, shapes, train

SCHEDULES = ("constant", "onecycle", "cosine")
OPTIMIZERS = ("sgd", "adamw")
INITS = ("xavier", "default")


@dataclass(frozen=True)
class Preset:
    """One training recipe: the net, the optimiser and schedule, the data (lesson 05)."""

    name: str = "custom"
    description: str = ""
    # the net (models.nin)
    arch: int = 224
    width: float = 1.0
    batch_norm: bool = False
    dropout: float = 0.5
    num_1x1: int = 2
    final_relu: bool = True
    init: str = "xavier"
    # the optimiser and its schedule
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    label_smoothing: float = 0.0
    # the data
    batch_size: int = 128
    num_epochs: int = 10
    resize: int = 224
    flip: bool = False
    subset: object = None
    test_subset: object = None
    eval_batch_size: int = 500
    # the run
    seed: int = 0
    device: str = "auto"
    amp: object = "auto"
    channels_last: object = "auto"
    compile: bool = False
    threads: object = None

    def __post_init__(self):
        validate(self)

    def with_overrides(self, **overrides):
        """A copy with some values changed (validated), e.g. ``with_overrides(lr=0.05, num_epochs=3)``."""
        known = {f.name for f in fields(self)}
        changes = {}
        for key, value in overrides.items():
            if key not in known:
                raise ValueError(f"setting {key!r} is not known; choose from {', '.join(sorted(known))}.")
            changes[key] = value
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The preset as a plain dict (stored in histories and checkpoints)."""
        return dataclasses.asdict(self)

    def image_size(self):
        """The side of the images the net sees (``resize``, or 28 without resizing)."""
        return self.resize if self.resize is not None else 28

    def build_net(self):
        """The NiN this preset trains, initialised (Xavier-uniform like the book, or PyTorch's default).

        ``final_relu=False`` drops the ReLU after the last 1×1 conv, so the class scores that global
        average pooling turns into logits may be negative: with the seed's ReLU a class whose scores
        all fall below 0 gets no gradient and is never predicted again (a "dead class", the main
        cause of the seed recipe's run-to-run spread).
        """
        net = models.nin(arch=self.arch, width=self.width, batch_norm=self.batch_norm,
                         dropout=self.dropout, num_1x1=self.num_1x1)
        if not self.final_relu:
            net[-3][-1] = nn.Identity()
        if self.init == "xavier":
            models.init_xavier(net)
        return net

    def __str__(self):
        keys = ("arch", "width", "batch_norm", "num_1x1", "final_relu", "dropout", "optimizer", "lr", "momentum", "nesterov", "weight_decay",
                "schedule", "label_smoothing", "batch_size", "num_epochs", "resize", "flip", "subset", "seed")
        return f"{self.name}: " + ", ".join(f"{k}={getattr(self, k)}" for k in keys)


# ---------------------------------------------------------------------------------------------
# Validation: one sentence per bad value

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_in(p, key, low, high=None):
    v = getattr(p, key)
    if not _is_int(v) or v < low or (high is not None and v > high):
        allowed = f"a whole number from {low} to {high}" if high is not None else f"a whole number >= {low}"
        raise ValueError(f"{key} {v!r} is not allowed; use {allowed}.")


def _number_in(p, key, low, high, low_open=False, high_open=True):
    v = getattr(p, key)
    ok = _is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{key} {v!r} is not allowed; use a number in {interval}.")


def _choice(p, key, allowed):
    v = getattr(p, key)
    if v not in allowed:
        raise ValueError(f"{key} {v!r} is not known; choose one of {', '.join(map(str, allowed))}.")


def validate(p):
    """Check every value of a preset; raise ValueError naming the first bad one and what is allowed."""
    train.check_lr(p.lr)
    _int_in(p, "batch_size", 1, 60000)
    _int_in(p, "num_epochs", 1, 1000)
    _int_in(p, "eval_batch_size", 1, 10000)
    _int_in(p, "seed", 0)
    _number_in(p, "momentum", 0, 1)
    _number_in(p, "weight_decay", 0, 1)
    _number_in(p, "label_smoothing", 0, 1)
    _number_in(p, "dropout", 0, 1)
    _number_in(p, "width", 0, 4, low_open=True, high_open=False)
    _int_in(p, "num_1x1", 0, 4)
    _choice(p, "arch", tuple(models.ARCHS))
    _choice(p, "schedule", SCHEDULES)
    _choice(p, "optimizer", OPTIMIZERS)
    _choice(p, "init", INITS)
    _choice(p, "device", runtime.DEVICES)
    for key in ("batch_norm", "final_relu", "nesterov", "flip", "compile"):
        if not isinstance(getattr(p, key), bool):
            raise ValueError(f"{key} {getattr(p, key)!r} is not allowed; use True or False.")
    for key in ("amp", "channels_last"):
        if getattr(p, key) not in ("auto", True, False):
            raise ValueError(f"{key} {getattr(p, key)!r} is not allowed; use 'auto', True or False.")
    if p.nesterov and p.momentum <= 0:
        raise ValueError(f"nesterov=True needs momentum > 0 (momentum is {p.momentum}); set a momentum or nesterov=False.")
    if p.nesterov and p.optimizer != "sgd":
        raise ValueError(f"nesterov=True works with optimizer 'sgd' only, not {p.optimizer!r}; set nesterov=False.")
    if p.subset is not None:
        _int_in(p, "subset", 1, 60000)
        if p.batch_size > p.subset:
            raise ValueError(f"batch_size {p.batch_size} is larger than the subset of {p.subset} training images; "
                             f"use a batch size of at most {p.subset}.")
    if p.test_subset is not None:
        _int_in(p, "test_subset", 1, 10000)
    if p.resize is not None:
        _check_resize(p)
    if p.threads is not None:
        _int_in(p, "threads", 1, 256)
    check_image_size(p)


def check_image_size(p):
    """Raise ValueError if the preset's image size is too small for its net (shapes.check_input_size)."""
    with torch.device("meta"):  # shapes only: no memory, no random numbers drawn (importing presets seeds nothing)
        probe = models.nin(arch=p.arch, width=p.width, batch_norm=p.batch_norm, dropout=p.dropout, num_1x1=p.num_1x1)
    try:
        shapes.check_input_size(probe, p.image_size())
    except shapes.InputTooSmallError as e:
        raise ValueError(f"image size {p.image_size()} is too small for the {p.name} preset's net: {e}") from None


# ---------------------------------------------------------------------------------------------
# Memory: an estimate before anything is allocated

MAX_RESIZE = 1024  # the largest image side a preset accepts


def _check_resize(p):
    """``resize`` must be a whole number from 1 to MAX_RESIZE; a larger one is refused with its memory estimate."""
    v = p.resize
    if _is_int(v) and v > MAX_RESIZE:
        need = memory_estimate(p, size=v)
        at = (f" (at {v}×{v} px one training step of batch_size {p.batch_size} would need about {_bytes(need)})"
              if need is not None else "")
        raise ValueError(f"resize {v} is not allowed; use a whole number from 1 to {MAX_RESIZE}{at}.")
    _int_in(p, "resize", 1, MAX_RESIZE)


def _bytes(n):
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 1e3:,.1f} kB"


def memory_estimate(p, size=None, batch_size=None, bf16=False):
    """Bytes one training step of preset ``p`` needs (``shapes.cost`` on a meta-device net: nothing is
    allocated); None if it cannot be estimated (lesson 05)."""
    try:
        with torch.device("meta"):
            net = models.nin(arch=p.arch, width=p.width, batch_norm=p.batch_norm, dropout=p.dropout,
                             num_1x1=p.num_1x1)
        slots = 2 if p.optimizer == "adamw" else int(p.momentum > 0)
        c = shapes.cost(net, size or p.image_size(), batch_size or p.batch_size, optimizer_slots=slots,
                        dtype=torch.bfloat16 if bf16 else torch.float32)
    except (ValueError, RuntimeError, OverflowError):
        return None
    return c["train_bytes"]


def available_memory(device):
    """Bytes free for training on ``device`` now (CUDA: free GPU memory; CPU: the system's available memory,
    within a container's limit), or None where it cannot be told."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return torch.cuda.mem_get_info(device)[0]
        if device.type == "mps":
            return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        if device.type == "cpu":
            return _cpu_available()
    except (OSError, ValueError, RuntimeError, AttributeError):
        return None
    return None


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cpu_available():
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return None
    for limit, used in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        cap, now = _read_int(limit), _read_int(used)
        if cap is not None and now is not None and cap < 2**60:
            free = cap - now if free is None else min(free, cap - now)
            break
    return free


def check_memory(p, device, available=None):
    """Raise ValueError, before anything is allocated, if one training step of ``p`` needs more memory than
    ``device`` has free (``available`` bytes; default: measured now); the sentence says what fits (lesson 05)."""
    device = torch.device(device)
    free = available_memory(device) if available is None else available
    bf16 = device.type == "cuda" and p.amp in ("auto", True)
    need = memory_estimate(p, bf16=bf16)
    if free is None or need is None or need <= free:
        return
    one = memory_estimate(p, batch_size=1, bf16=bf16)
    per_image = max(1, memory_estimate(p, batch_size=2, bf16=bf16) - one)
    most = (free - (one - per_image)) // per_image
    fits = (f"use a batch size of at most {most:,} at this image size, or a smaller image size" if most >= 1 else
            "not even one image of this size fits, so use a smaller image size")
    raise ValueError(f"image size {p.image_size()} with batch_size {p.batch_size} needs about {_bytes(need)} for one "
                     f"training step (estimated before allocating anything) but this {device.type} has only "
                     f"{_bytes(free)} free; {fits}.")


# ---------------------------------------------------------------------------------------------
# The presets

PRESETS = {
    "d2l": Preset(
        name="d2l",
        description="the seed's recipe exactly: NiN at 224 px, Xavier init, SGD lr 0.1, batch 128, 10 epochs",
        arch=224, width=1.0, batch_norm=False, dropout=0.5, init="xavier",
        lr=0.1, momentum=0.0, schedule="constant",
        batch_size=128, num_epochs=10, resize=224, flip=False),
    "improved": Preset(
        name="improved",
        description="the seed's net with BatchNorm, no ReLU on the class scores, Nesterov momentum, weight "
                    "decay, a one-cycle schedule, label smoothing and random flips (224 px, 10 epochs, for a GPU)",
        arch=224, width=1.0, batch_norm=True, dropout=0.5, init="xavier",
        final_relu=False, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle",
        label_smoothing=0.1, batch_size=128, num_epochs=10, resize=224, flip=True),
    "quick": Preset(
        name="quick",
        description="a 28-px NiN at a quarter of the width with one 1×1 conv per block, BatchNorm and a "
                    "one-cycle schedule, one epoch: about 0.90 test accuracy in about a minute on a 2-core CPU",
        arch=28, width=0.25, batch_norm=True, dropout=0.0, num_1x1=1, final_relu=False, init="default",
        lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.1,
        batch_size=64, num_epochs=1, resize=None, flip=False, eval_batch_size=100),
}


def names():
    """The preset names, e.g. for a dropdown."""
    return list(PRESETS)


def get_preset(name, **overrides):
    """A named preset ('d2l', 'improved', 'quick'), optionally with some values changed."""
    if isinstance(name, Preset):
        preset = name
    elif name in PRESETS:
        preset = PRESETS[name]
    else:
        raise ValueError(f"preset {name!r} is not known; choose one of {', '.join(PRESETS)}.")
    return preset.with_overrides(**overrides) if overrides else preset


# ---------------------------------------------------------------------------------------------
# A run built from a preset

@dataclass
class Run:
    """Everything ``fit`` needs for one preset: net, optimiser, scheduler, loss and batches (lesson 05)."""

    preset: Preset
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    loss: nn.Module
    train_iter: data_mod.Batches
    test_iter: data_mod.Batches
    device: torch.device

    def fit(self, **kwargs):
        """``train.fit`` with this run's pieces; keyword arguments (callbacks, stop, checkpoint, ...) pass
        through and may replace any piece (``test_iter=None`` skips evaluation)."""
        p = self.preset
        options = dict(num_epochs=p.num_epochs, optimizer=self.optimizer, scheduler=self.scheduler, loss=self.loss,
                       device=self.device, amp=p.amp, channels_last=p.channels_last, compile=p.compile,
                       meta={"preset": p.to_dict()})
        options.update(kwargs)
        options.setdefault("test_iter", self.test_iter)
        with cpu_threads(p.threads if self.device.type == "cpu" else None):
            return train.fit(self.net, self.train_iter, **options)

    def evaluate(self):
        """Test accuracy of the net now."""
        return train.evaluate(self.net, self.test_iter, self.device, amp=self.preset.amp,
                              channels_last=self.preset.channels_last)


@contextlib.contextmanager
def cpu_threads(n):
    """Use ``n`` CPU threads for torch inside the block (None: leave torch's setting), then restore it.

    On a CPU that other programs share, one thread per training process can be several times faster
    than two that keep waiting for each other.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_optimizer(p, net):
    """SGD with the preset's lr, momentum, Nesterov flag and weight decay (the book's SGD when all are 0),
    or AdamW with its lr and weight decay (``optimizer='adamw'``; momentum is then Adam's beta1 if > 0)."""
    if p.optimizer == "adamw":
        betas = (p.momentum if p.momentum > 0 else 0.9, 0.999)
        return torch.optim.AdamW(net.parameters(), lr=p.lr, betas=betas, weight_decay=p.weight_decay)
    return torch.optim.SGD(net.parameters(), lr=p.lr, momentum=p.momentum, nesterov=p.nesterov,
                           weight_decay=p.weight_decay)


def make_scheduler(p, optimizer, steps_per_epoch):
    """The preset's learning-rate schedule, stepped after every batch (None for a constant rate)."""
    total = p.num_epochs * steps_per_epoch
    if p.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=p.lr, total_steps=total,
                                                   cycle_momentum=p.optimizer == "sgd" and p.momentum > 0)
    if p.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return None


def make_batches(p, fmnist, device):
    """Training and test ``Batches`` on ``device`` for a preset (shuffled, flipped if asked, resized there)."""
    cl = train._use_channels_last(p.channels_last, device)
    train_iter = data_mod.Batches(fmnist.train_images, fmnist.train_labels, p.batch_size, shuffle=True,
                                  seed=p.seed, resize=p.resize, subset=p.subset, device=device,
                                  channels_last=cl, flip=p.flip)
    test_iter = data_mod.Batches(fmnist.test_images, fmnist.test_labels, min(p.eval_batch_size, p.test_subset or 10000),
                                 shuffle=False, seed=p.seed, resize=p.resize, subset=p.test_subset,
                                 device=device, channels_last=cl)
    return train_iter, test_iter


def build_run(preset="quick", *, data=None, device=None, **overrides):
    """Build a ``Run`` from a preset name or ``Preset`` (values changed by ``overrides``).

    Seeds torch with the preset's seed first, so the same preset gives the same net and batches.
    ``data`` reuses a loaded ``data.FashionMNIST``; ``device`` overrides the preset's device.
    """
    p = get_preset(preset, **overrides)
    device = runtime.pick_device(device if device is not None else p.device)
    check_memory(p, device)
    if data is None:
        data = data_mod.load_fashion_mnist()
    runtime.seed_everything(p.seed)
    net = p.build_net().to(device)
    optimizer = make_optimizer(p, net)
    train_iter, test_iter = make_batches(p, data, device)
    scheduler = make_scheduler(p, optimizer, len(train_iter))
    loss = nn.CrossEntropyLoss(label_smoothing=p.label_smoothing)
    return Run(p, net, optimizer, scheduler, loss, train_iter, test_iter, device)
