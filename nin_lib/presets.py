"""Named, validated hyper-parameter sets (lesson 05): ``d2l``, ``improved`` and ``quick``.

>>> p = get_preset("quick").with_overrides(num_epochs=2)
>>> run = build_run(p)            # net, optimiser, scheduler, batches on the device
>>> history = run.fit()

Every value is checked when a preset is made or changed: a bad one raises ValueError with one
sentence naming the value and what is allowed.
"""
import dataclasses
from dataclasses import dataclass, fields

import torch
from torch import nn

from . import checks, models, runtime, shapes, train
from . import data as data_mod
from .runtime import available_memory

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
    mlp_kernel: int = 1
    final_relu: bool = True
    head: str = "gap"
    fc_hidden: int = 4096
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
        for key in overrides:
            if key not in known:
                raise checks.refuse(f"setting {key!r} is not known; choose from {', '.join(sorted(known))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self):
        """The preset as a plain dict (stored in histories and checkpoints)."""
        return dataclasses.asdict(self)

    def image_size(self):
        """The side of the images the net sees (``resize``, or 28 without resizing)."""
        return self.resize if self.resize is not None else 28

    def net_options(self):
        """The arguments of ``models.nin`` this preset stands for (the one way from a preset to its net)."""
        return dict(arch=self.arch, width=self.width, batch_norm=self.batch_norm, dropout=self.dropout,
                    num_1x1=self.num_1x1, mlp_kernel=self.mlp_kernel, final_relu=self.final_relu, head=self.head,
                    hidden=self.fc_hidden,
                    input_size=self.image_size())

    def build_net(self, meta=False):
        """The NiN this preset trains, initialised (Xavier-uniform like the book, or PyTorch's default).

        ``meta=True`` builds it on the meta device instead: shapes only, no memory, no random numbers drawn
        (the image-size check and the memory estimate). ``final_relu=False`` drops the ReLU on the class
        scores (a class whose scores all fall below 0 would otherwise get no gradient: a "dead class", the
        main cause of the seed recipe's run-to-run spread).
        """
        if meta:
            with torch.device("meta"):
                return models.nin(**self.net_options())
        net = models.nin(**self.net_options())
        return models.init_xavier(net) if self.init == "xavier" else net

    def __str__(self):
        keys = ("arch", "width", "batch_norm", "num_1x1", "final_relu", "dropout", "optimizer", "lr", "momentum", "nesterov", "weight_decay",
                "schedule", "label_smoothing", "batch_size", "num_epochs", "resize", "flip", "subset", "seed")
        return f"{self.name}: " + ", ".join(f"{k}={getattr(self, k)}" for k in keys)


# ---------------------------------------------------------------------------------------------
# Validation: one sentence per bad value (``checks``)

def validate(p):
    """Check every value of a preset; raise ValueError naming the first bad one and what is allowed."""
    checks.learning_rate(p.lr)
    checks.whole_number("batch_size", p.batch_size, 1, 60000)
    checks.whole_number("num_epochs", p.num_epochs, 1, 1000)
    checks.whole_number("eval_batch_size", p.eval_batch_size, 1, 10000)
    checks.whole_number("seed", p.seed, 0)
    for key in ("momentum", "weight_decay", "label_smoothing", "dropout"):
        checks.number(key, getattr(p, key), 0, 1, high_open=True)
    checks.number("width", p.width, 0, 4, low_open=True)
    checks.whole_number("num_1x1", p.num_1x1, 0, 4)
    checks.choice("mlp_kernel", p.mlp_kernel, (1, 3))
    checks.whole_number("fc_hidden", p.fc_hidden, 1, 65536)
    checks.choice("arch", p.arch, tuple(models.ARCHS))
    checks.choice("head", p.head, models.HEADS)
    checks.choice("schedule", p.schedule, SCHEDULES)
    checks.choice("optimizer", p.optimizer, OPTIMIZERS)
    checks.choice("init", p.init, INITS)
    checks.choice("device", p.device, runtime.DEVICES)
    for key in ("batch_norm", "final_relu", "nesterov", "flip", "compile"):
        checks.flag(key, getattr(p, key))
    for key in ("amp", "channels_last"):
        checks.auto_flag(key, getattr(p, key))
    if p.nesterov and p.momentum <= 0:
        raise checks.refuse(f"nesterov=True needs momentum > 0 (momentum is {p.momentum}); set a momentum or "
                            "nesterov=False")
    if p.nesterov and p.optimizer != "sgd":
        raise checks.refuse(f"nesterov=True works with optimizer 'sgd' only, not {p.optimizer!r}; set nesterov=False")
    if p.subset is not None:
        checks.whole_number("subset", p.subset, 1, 60000)
        if p.batch_size > p.subset:
            raise checks.refuse(f"batch_size {p.batch_size} is larger than the subset of {p.subset} training images; "
                                f"use a batch size of at most {p.subset}")
    checks.whole_number("test_subset", p.test_subset, 1, 10000, none=True)
    if p.resize is not None:
        _check_resize(p)
    checks.whole_number("threads", p.threads, 1, 256, none=True)
    check_image_size(p)


def check_image_size(p):
    """Raise ValueError if the preset's image size is too small for its net (shapes.check_input_size)."""
    try:
        shapes.check_input_size(p.build_net(meta=True), p.image_size())
    except shapes.InputTooSmallError as e:
        raise checks.refuse(f"image size {p.image_size()} is too small for the {p.name} preset's net: {e}") from None


# ---------------------------------------------------------------------------------------------
# Memory: an estimate before anything is allocated

MAX_RESIZE = 1024  # the largest image side a preset accepts


def _check_resize(p):
    """``resize`` must be a whole number from 1 to MAX_RESIZE; a larger one is refused with its memory estimate."""
    v = p.resize
    if checks.is_whole(v) and v > MAX_RESIZE:
        need = memory_estimate(p, size=v)
        at = (f" (at {v}×{v} px one training step of batch_size {p.batch_size} would need about {_bytes(need)})"
              if need is not None else "")
        raise checks.refuse(f"resize {v} is not allowed; use a whole number from 1 to {MAX_RESIZE}{at}")
    checks.whole_number("resize", v, 1, MAX_RESIZE)


def _bytes(n):
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 1e3:,.1f} kB"


def memory_estimate(p, size=None, batch_size=None, bf16=False):
    """Bytes one training step of preset ``p`` needs (``shapes.cost`` on a meta-device net: nothing is
    allocated); None if it cannot be estimated (lesson 05)."""
    try:
        net = p.build_net(meta=True)
        slots = 2 if p.optimizer == "adamw" else int(p.momentum > 0)
        c = shapes.cost(net, size or p.image_size(), batch_size or p.batch_size, optimizer_slots=slots,
                        dtype=torch.bfloat16 if bf16 else torch.float32)
    except (ValueError, RuntimeError, OverflowError):
        return None
    return c["train_bytes"]


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
    raise checks.refuse(f"image size {p.image_size()} with batch_size {p.batch_size} needs about {_bytes(need)} for one "
                        f"training step (estimated before allocating anything) but this {device.type} has only "
                        f"{_bytes(free)} free; {fits}")


# ---------------------------------------------------------------------------------------------
# Time: one timed training step on the CPU, before a long run starts

def measure_seconds_per_image(net, image_shape, batch_size=8, repeats=2):
    """Seconds one training image costs on the CPU: the fastest of ``repeats`` timed forward+backward passes on a
    copy of ``net``.

    The copy runs in eval mode on zeros, so no random numbers are drawn and ``net`` is untouched.
    """
    import copy
    import time

    probe = copy.deepcopy(net).to("cpu").eval()
    X = torch.zeros((batch_size, *image_shape))

    def step(n):
        probe(X[:n]).float().sum().backward()

    step(1)  # warm-up: the first pass allocates
    times = []
    for _ in range(repeats):  # the fastest of a few: other work on the machine only ever slows a pass down
        start = time.perf_counter()
        step(batch_size)
        times.append(time.perf_counter() - start)
    return min(times) / batch_size


def seconds_per_image(p):
    """``measure_seconds_per_image`` for the net of preset ``p`` at its image size."""
    return measure_seconds_per_image(p.build_net(), (1, p.image_size(), p.image_size()))


def duration(seconds):
    """A duration in words: '45 s', '12 minutes', '26 hours'."""
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} s"


CPU_FLOPS = 100e9  # floating-point operations a second: more than a laptop's CPU sustains training these nets


def cpu_seconds(p, images):
    """A lower bound on the seconds ``images`` training images of preset ``p`` take on a CPU: the training FLOPs
    (``shapes.cost``, counted, not timed) at ``CPU_FLOPS``. Counted, so it is the same on a busy machine."""
    net = p.build_net(meta=True)
    flops = shapes.cost(net, p.image_size(), p.batch_size)["train_flops"] / p.batch_size
    return images * flops / CPU_FLOPS


def too_slow(p, images, seconds, limit):
    """The sentence for a CPU run estimated (``cpu_seconds``) to take more than ``limit`` seconds: why, and what to do."""
    per_image = seconds / images * CPU_FLOPS
    return checks.refuse(f"the {p.name} preset's net needs about {per_image / 1e9:,.2f} billion floating-point "
                         f"operations per training image, so {images:,} training images would take at least "
                         f"{duration(seconds)} on a CPU even at {CPU_FLOPS / 1e9:.0f} GFLOP/s (more than "
                         f"{duration(limit)}); choose fewer images or epochs, the quick preset, or a GPU")


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
                    "one-cycle schedule, one epoch over the 60,000 images: sized to train usefully on a CPU",
        arch=28, width=0.25, batch_norm=True, dropout=0.0, num_1x1=1, final_relu=False, init="default",
        lr=0.12, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.15,
        batch_size=64, num_epochs=1, resize=None, flip=False, eval_batch_size=100),
}


def names():
    """The preset names, e.g. for a dropdown."""
    return list(PRESETS)


def get_preset(name, **overrides):
    """A named preset ('d2l', 'improved', 'quick'), optionally with some values changed."""
    preset = name if isinstance(name, Preset) else PRESETS[checks.choice("preset", name, tuple(PRESETS))]
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
        options.setdefault("threads", p.threads)
        return train.fit(self.net, self.train_iter, **options)

    def evaluate(self, data_iter=None):
        """Accuracy of the net now on ``data_iter`` (default: the test batches)."""
        return train.evaluate(self.net, data_iter if data_iter is not None else self.test_iter, self.device,
                              amp=self.preset.amp, channels_last=self.preset.channels_last)


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
    train_iter = data_mod.Batches(fmnist.train_images, fmnist.train_labels, p.batch_size, shuffle=True,
                                  seed=p.seed, resize=p.resize, subset=p.subset, device=device,
                                  channels_last=runtime.uses_channels_last(p.channels_last, device), flip=p.flip)
    images, labels = fmnist.test_images, fmnist.test_labels
    if p.test_subset is not None:
        index = data_mod.subset_indices(len(labels), p.test_subset, p.seed)
        images, labels = images[index], labels[index]
    return train_iter, eval_batches(p, images, labels, device)


def eval_batches(p, images, labels, device):
    """Batches to evaluate on: in order, ``eval_batch_size`` images at a time, resized as the preset trains."""
    return data_mod.Batches(images, labels, min(p.eval_batch_size, len(labels)), resize=p.resize, device=device,
                            channels_last=runtime.uses_channels_last(p.channels_last, device))


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
