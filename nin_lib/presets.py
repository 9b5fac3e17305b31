"""Named, checked training recipes (lesson 05): ``d2l``, ``improved``, ``quick`` and ``maps`` (lesson 04's
class-map net), and the ``Run`` built from one."""
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from . import checks, models, resources, runtime, shapes, train
from . import data as data_mod

MAX_RESIZE = 1024  # the largest image side a preset accepts


@dataclass(frozen=True)
class Preset:
    """One training recipe: the net, the optimiser and schedule, the data (lesson 05)."""

    name: str = "custom"
    description: str = ""
    # the net (models.nin)
    arch: object = 224  # a key of models.ARCHS
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
        """A copy with some values changed (checked), e.g. ``with_overrides(lr=0.05, num_epochs=3)``."""
        known = {f.name for f in fields(self)}
        for key in overrides:
            if key not in known:
                raise checks.refuse(f"setting {key!r} is not known; choose from {', '.join(sorted(known))}")
        return replace(self, **overrides)

    def to_dict(self):
        """The preset as a plain dict (stored in histories and checkpoints)."""
        return asdict(self)

    def image_size(self):
        """The side of the images the net sees (``resize``, or 28 without resizing)."""
        return self.resize if self.resize is not None else 28

    def image_shape(self):
        """The shape of one image the net sees: (1, side, side)."""
        return (1, self.image_size(), self.image_size())

    def net_options(self):
        """The arguments of ``models.nin`` this preset stands for (the one way from a preset to its net)."""
        return dict(arch=self.arch, width=self.width, batch_norm=self.batch_norm, dropout=self.dropout,
                    num_1x1=self.num_1x1, mlp_kernel=self.mlp_kernel, final_relu=self.final_relu, head=self.head,
                    hidden=self.fc_hidden, input_size=self.image_size())

    def build_net(self, device=None):
        """The preset's NiN, Xavier- or default-initialised; ``device='meta'``: shapes only, no memory, no RNG."""
        with torch.device(device or "cpu"):
            net = models.nin(**self.net_options())
        return models.init_xavier(net) if self.init == "xavier" else net

    def __str__(self):
        keys = ("arch", "width", "batch_norm", "num_1x1", "final_relu", "dropout", "optimizer", "lr", "momentum",
                "nesterov", "weight_decay", "schedule", "label_smoothing", "batch_size", "num_epochs", "resize", "flip",
                "subset", "seed")
        return f"{self.name}: " + ", ".join(f"{k}={getattr(self, k)}" for k in keys)


def validate(p):
    """Check a preset's values, then its net's (``models.nin``, on the meta device); a ``Refusal`` names the first."""
    sizes = data_mod.SPLIT_SIZES  # the data's split sizes bound the batch and subset sizes
    checks.learning_rate(p.lr)
    for key, low, high in (("batch_size", 1, sizes["train"]), ("num_epochs", 1, 1000), ("seed", 0, None),
                           ("eval_batch_size", 1, sizes["test"]), ("fc_hidden", 1, 65536)):
        checks.whole_number(key, getattr(p, key), low, high)
    checks.whole_number("threads", p.threads, 1, 256, none=True)
    for key in ("momentum", "weight_decay", "label_smoothing"):
        checks.number(key, getattr(p, key), 0, 1, high_open=True)
    for key, allowed in (("schedule", ("constant", "onecycle", "cosine")), ("optimizer", ("sgd", "adamw")),
                         ("init", ("xavier", "default")), ("device", runtime.DEVICES)):
        checks.choice(key, getattr(p, key), allowed)
    for key in ("batch_norm", "nesterov", "flip", "compile"):
        checks.flag(key, getattr(p, key))
    for key in ("amp", "channels_last"):
        checks.auto_flag(key, getattr(p, key))
    if p.nesterov and p.momentum <= 0:
        raise checks.refuse(f"nesterov=True needs momentum > 0 (momentum is {p.momentum}); set a momentum or "
                            "nesterov=False")
    if p.nesterov and p.optimizer != "sgd":
        raise checks.refuse(f"nesterov=True works with optimizer 'sgd' only, not {p.optimizer!r}; set nesterov=False")
    if checks.whole_number("subset", p.subset, 1, sizes["train"], none=True) and p.batch_size > p.subset:
        raise checks.refuse(f"batch_size {p.batch_size} is larger than the subset of {p.subset} training images; "
                            f"use a batch size of at most {p.subset}")
    checks.whole_number("test_subset", p.test_subset, 1, sizes["test"], none=True)
    if checks.is_whole(p.resize) and p.resize > MAX_RESIZE:
        raise checks.refuse(f"resize {p.resize} is not allowed; use a whole number from 1 to {MAX_RESIZE} (at "
                            f"{p.resize}×{p.resize} px one training step of batch_size {p.batch_size} would need "
                            f"about {resources.gib(memory_estimate(p))})")
    checks.whole_number("resize", p.resize, 1, MAX_RESIZE, none=True)
    try:
        shapes.check_input_size(p.build_net("meta"), p.image_size())
    except shapes.InputSizeError as e:
        raise checks.refuse(f"image size {p.image_size()} is too small for the {p.name} preset's net: {e}") from None


def _memory_options(p, bf16=False):
    return dict(optimizer_slots=2 if p.optimizer == "adamw" else int(p.momentum > 0), bf16=bf16)


def memory_estimate(p, bf16=False):
    """Bytes one training step of preset ``p`` needs (``resources.step_bytes``); None if it cannot be told."""
    return resources.step_bytes(p.build_net("meta"), p.image_shape(), p.batch_size, **_memory_options(p, bf16))


def check_memory(p, device, available=None):
    """``resources.check_memory`` for one training step of preset ``p`` on ``device`` (lesson 07)."""
    return resources.check_memory(p.build_net("meta"), p.image_shape(), p.batch_size, device, available=available,
                                  **_memory_options(p, runtime.uses_amp(p.amp, device)))


def seconds_per_image(p):
    """At least how long one training image of preset ``p`` takes a CPU (``resources.seconds_per_image``)."""
    return resources.seconds_per_image(p.build_net("meta"), p.image_shape())


def check_cpu_time(p, images, limit=resources.CPU_LIMIT_S):
    """Refuse a CPU run of ``images`` training images of preset ``p`` estimated to take more than ``limit`` s."""
    return resources.check_cpu_time(p.build_net("meta"), p.image_shape(), images, limit=limit,
                                    what=f"the {p.name} preset's net")


PRESETS = {  # the presets; a Preset's defaults are the seed's recipe
    "d2l": Preset(name="d2l", description="the seed's recipe exactly: NiN at 224 px, Xavier init, SGD lr 0.1, "
                                          "batch 128, 10 epochs"),
    "improved": Preset(
        name="improved",
        description="the seed's net with BatchNorm, no ReLU on the class scores, Nesterov momentum, weight "
                    "decay, a one-cycle schedule, label smoothing and random flips (224 px, 10 epochs, for a GPU)",
        batch_norm=True, final_relu=False, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle",
        label_smoothing=0.1, flip=True),
    "quick": Preset(
        name="quick",
        description="a 28-px NiN at a quarter of the width with one 1×1 conv per block, BatchNorm and a "
                    "one-cycle schedule, one epoch over all training images: sized to train usefully on a CPU",
        arch=28, width=0.25, batch_norm=True, dropout=0.0, num_1x1=1, final_relu=False, init="default",
        lr=0.12, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.15,
        batch_size=64, num_epochs=1, resize=None, eval_batch_size=100),
    "maps": Preset(
        name="maps",
        description="lesson 04's class-map net: a 28-px NiN of two blocks whose 7×7 class-map cells each see "
                    "10×10 pixels, with BatchNorm and the chapter's final ReLU (its weights ship with nin_lib)",
        arch="local", width=1.0, batch_norm=True, dropout=0.0, num_1x1=1, final_relu=True, init="default",
        lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle", label_smoothing=0.0,
        batch_size=64, num_epochs=4, resize=None, eval_batch_size=500),
}


def names():
    """The preset names, e.g. for a dropdown."""
    return list(PRESETS)


def get_preset(name, **overrides):
    """A named preset ('d2l', 'improved', 'quick', 'maps'), optionally with some values changed."""
    preset = name if isinstance(name, Preset) else PRESETS[checks.choice("preset", name, tuple(PRESETS))]
    return preset.with_overrides(**overrides) if overrides else preset


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

    def callbacks(self):
        """The preset's own ``fit`` callbacks: schedule, bf16 and channels_last policy, threads, compile, the preset
        stored in the history."""
        p = self.preset
        cbs = [train.MixedPrecision(p.amp), train.ChannelsLast(p.channels_last), train.CPUThreads(p.threads),
               train.Meta(preset=p.to_dict())]
        cbs += [train.Schedule(self.scheduler)] if self.scheduler is not None else []
        return cbs + ([train.Compile()] if p.compile else [])

    def fit(self, callbacks=(), test=True):
        """``train.fit`` with this run's pieces and callbacks, then ``callbacks`` (Stop, Checkpoint, ...);
        ``test=False`` skips the test pass after each epoch."""
        return train.fit(self.net, self.train_iter, self.test_iter if checks.flag("test", test) else None,
                         num_epochs=self.preset.num_epochs, optimizer=self.optimizer, loss=self.loss,
                         device=self.device, callbacks=[*self.callbacks(), *callbacks])

    def evaluate(self, data_iter=None):
        """Accuracy of the net now on ``data_iter`` (default: the test batches)."""
        return train.evaluate(self.net, data_iter if data_iter is not None else self.test_iter, self.device,
                              amp=self.preset.amp, channels_last=self.preset.channels_last)


def eval_batches(p, images, labels, device, subset=None):
    """Batches to evaluate on, in order, resized as the preset trains (a seeded ``subset`` of them if asked)."""
    return data_mod.Batches(images, labels, min(p.eval_batch_size, subset or len(labels)), subset=subset,
                            seed=p.seed, resize=p.resize, device=device,
                            channels_last=runtime.uses_channels_last(p.channels_last, device))


def build_run(preset="quick", *, data=None, device=None, **overrides):
    """A seeded ``Run`` of a preset (name or ``Preset``) with ``overrides``; ``data`` reuses a loaded dataset."""
    p = get_preset(preset, **overrides)
    device = runtime.pick_device(device if device is not None else p.device)
    check_memory(p, device)
    data = data if data is not None else data_mod.load_fashion_mnist()
    runtime.seed_everything(p.seed)
    net = p.build_net().to(device)
    if p.optimizer == "adamw":  # momentum > 0: Adam's beta1
        optimizer = torch.optim.AdamW(net.parameters(), lr=p.lr, betas=(p.momentum or 0.9, 0.999),
                                      weight_decay=p.weight_decay)
    else:  # the book's SGD when momentum and weight decay are 0
        optimizer = torch.optim.SGD(net.parameters(), lr=p.lr, momentum=p.momentum, nesterov=p.nesterov,
                                    weight_decay=p.weight_decay)
    train_iter = data_mod.Batches(data.train_images, data.train_labels, p.batch_size, shuffle=True, seed=p.seed,
                                  resize=p.resize, subset=p.subset, device=device, flip=p.flip,
                                  channels_last=runtime.uses_channels_last(p.channels_last, device))
    test_iter = eval_batches(p, data.test_images, data.test_labels, device, subset=p.test_subset)
    steps, scheduler = p.num_epochs * len(train_iter), None  # the schedule is stepped after every batch
    if p.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=p.lr, total_steps=steps,
                                                        cycle_momentum=p.optimizer == "sgd" and p.momentum > 0)
    elif p.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loss = nn.CrossEntropyLoss(label_smoothing=p.label_smoothing)
    return Run(p, net, optimizer, scheduler, loss, train_iter, test_iter, device)
