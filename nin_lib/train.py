"""Training NiN (lesson 05): ``fit``, ``evaluate``, ``predict``, a ``History``, callbacks and checkpoints.

``fit`` is lesson 05's hand-written loop with hooks: everything beyond forward, loss, backward and step is a
``Callback`` run in a fixed order (``Callback.order``), as in fastai's miniai learner; ``fit`` adds the ``STANDARD``
ones unless one of the same class is given. A run that ends early ends by an ``EndOfRun`` exception, which ``fit``
catches: the net keeps its weights and the ``History`` says why (lesson 07).
"""
import contextlib
import copy
import dataclasses
import json
import math
import random
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from . import checks, runtime, shapes
from .runtime import atomic_path

CHECKPOINT_FORMAT = "nin-lib-checkpoint-1"


# History

@dataclasses.dataclass(repr=False)
class History:
    """Per-epoch results of ``fit`` (lesson 05).

    ``history.epochs`` is a list of dicts: ``epoch`` (1-based), ``loss``, ``train_acc``, ``test_acc`` (None
    without a test set or for a partial epoch), ``seconds`` (training plus evaluation), ``train_seconds``,
    ``images_per_s`` (per training second), ``images``, ``lr`` (at the epoch's end) and ``partial``.
    ``stopped`` is True when the run ended early, and ``reason`` says why in one sentence.
    """
    epochs: list = dataclasses.field(default_factory=list)
    stopped: bool = False
    reason: str = None
    meta: dict = dataclasses.field(default_factory=dict)

    def __len__(self):
        return len(self.epochs)

    def __iter__(self):
        return iter(self.epochs)

    def __getitem__(self, i):
        return self.epochs[i]

    def column(self, key):
        """One value per epoch, e.g. ``history.column('test_acc')``."""
        return [e.get(key) for e in self.epochs]

    loss = property(lambda self: self.column("loss"))
    train_acc = property(lambda self: self.column("train_acc"))
    test_acc = property(lambda self: self.column("test_acc"))

    @property
    def completed_epochs(self):
        return sum(1 for e in self.epochs if not e.get("partial"))

    @property
    def last(self):
        """The last epoch's record (a dict), or None before the first epoch."""
        return self.epochs[-1] if self.epochs else None

    @property
    def final_test_acc(self):
        """Test accuracy of the last epoch that has one, or None."""
        return next((e["test_acc"] for e in reversed(self.epochs) if e.get("test_acc") is not None), None)

    @property
    def total_seconds(self):
        return sum(e.get("seconds") or 0.0 for e in self.epochs)

    images = property(lambda self: sum(e.get("images", 0) for e in self.epochs))  # training images, all epochs

    @property
    def images_per_s(self):
        """Training images per second of training (evaluation not counted), over all epochs."""
        seconds = sum(e.get("train_seconds") or 0.0 for e in self.epochs)
        return self.images / seconds if seconds > 0 else 0.0

    def trained(self):
        """What was trained: '2 epoch(s)', '1 epoch(s) and 37 of 79 batches of epoch 2', or '37 of 79 batches of
        epoch 1'."""
        full = self.completed_epochs
        text = f"{full} epoch(s)" if full or not self.epochs else ""
        partial = next((e for e in self.epochs if e.get("partial")), None)
        if partial is not None:
            part = (f"{partial['batches']} of {partial['num_batches']} batches" if partial.get("num_batches")
                    else f"{partial['images']:,} images") + f" of epoch {partial['epoch']}"
            text = f"{text} and {part}" if text else part
        return text

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    def save_json(self, path):
        """Write the history as JSON, atomically (the command line's ``history.json``)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return Path(path)

    @classmethod
    def load_json(cls, path):
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self):
        """One line: what was trained, the last loss and accuracies, time and speed."""
        text = "no epoch finished"
        if self.epochs:
            e = self.epochs[-1]
            text = (f"{self.trained()}: loss {e['loss']:.3f}, train acc {e['train_acc']:.3f}, "
                    f"test acc {_fmt(self.final_test_acc)}, {self.total_seconds:.1f} s, "
                    f"{self.images_per_s:,.0f} images/s")
        return text + (f" ({self.reason})" if self.stopped or self.reason else "")

    def __repr__(self):
        return f"History({self.summary()})"


def _fmt(x):
    return "n/a" if x is None else f"{x:.3f}"  # a test accuracy that may be missing


def format_epoch(record, num_epochs=None):
    """The line printed for one epoch, d2l style: 'epoch 3/10: loss 0.512, train acc 0.812, ...'."""
    of = f"/{num_epochs}" if num_epochs else ""
    part = " (partial)" if record.get("partial") else ""
    return (f"epoch {record['epoch']}{of}{part}: loss {record['loss']:.3f}, "
            f"train acc {record['train_acc']:.3f}, test acc {_fmt(record.get('test_acc'))}, "
            f"{record['seconds']:.1f} s, {record['images_per_s']:,.0f} images/s")


# Evaluation

def _device_of(net):
    return next((p.device for p in net.parameters()), torch.device("cpu"))


def _to_device(X, y, device, channels_last):
    X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
    if channels_last and X.dim() == 4:
        X = X.contiguous(memory_format=torch.channels_last)
    return X, y


def _batches_in_eval_mode(net, data_iter, device, amp, channels_last):
    """(X, y, y_hat) for every batch, the net in eval mode without gradients (and back afterwards)."""
    device = _device_of(net) if device is None else runtime.pick_device(device)
    use_amp, cl = runtime.uses_amp(amp, device), runtime.uses_channels_last(channels_last, device)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for X, y in data_iter:
                X, y = _to_device(X, y, device, cl)
                with runtime.autocast(device, use_amp):
                    yield X, y, net(X)
    finally:
        net.train(was_training)


def evaluate(net, data_iter, device=None, *, loss=None, return_loss=False, amp="auto", channels_last="auto"):
    """Accuracy of ``net`` on ``data_iter`` (lesson 05; d2l's ``evaluate_accuracy_gpu``); with
    ``return_loss=True`` ``(accuracy, mean loss)`` (cross-entropy unless ``loss`` is given)."""
    loss = loss if loss is not None else nn.CrossEntropyLoss()
    correct, loss_sum, count = 0, 0.0, 0
    for X, y, y_hat in _batches_in_eval_mode(net, data_iter, device, amp, channels_last):
        correct += (y_hat.argmax(dim=1) == y).sum()
        if return_loss:
            loss_sum += loss(y_hat.float(), y).double() * y.shape[0]
        count += y.shape[0]
    if count == 0:
        raise checks.refuse("the evaluation data yielded no examples; give it at least one batch")
    accuracy = float(correct) / count
    return (accuracy, float(loss_sum) / count) if return_loss else accuracy


def predict(net, data_iter, device=None, *, amp="auto", channels_last="auto"):
    """All labels and predictions over ``data_iter`` as CPU tensors ``(y, y_hat)`` (lesson 05)."""
    pairs = [(y.cpu(), y_hat.argmax(dim=1).cpu())
             for _, y, y_hat in _batches_in_eval_mode(net, data_iter, device, amp, channels_last)]
    return torch.cat([y for y, _ in pairs]), torch.cat([p for _, p in pairs])


def confusion_matrix(y, y_hat, num_classes=10):
    """counts[i, j] = how many examples of true class i were predicted as class j (lesson 05)."""
    y, y_hat = torch.as_tensor(y).long().flatten(), torch.as_tensor(y_hat).long().flatten()
    if y.shape != y_hat.shape:
        raise checks.refuse(f"labels {tuple(y.shape)} and predictions {tuple(y_hat.shape)} must have the same length")
    return torch.bincount(y * num_classes + y_hat, minlength=num_classes * num_classes).view(num_classes, num_classes)


# Checkpoints

def rng_state():
    """The random-number states a resumed run needs: torch's (CPU and CUDA) and Python's."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointError(OSError):
    """A checkpoint could not be written (a full disk, no permission); the previous one is unchanged."""


def save_checkpoint(path, state):
    """Write a checkpoint atomically: if writing fails (a full disk), the previous one stays as it was and
    ``CheckpointError`` says so in one sentence."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as e:  # a full disk: OSError from Python, RuntimeError from torch.save
        kept = "the previous checkpoint there is unchanged" if path.exists() else "no checkpoint was written"
        raise CheckpointError(f"checkpoint {str(path)!r} could not be written ({_write_failure(e, path)}); "
                              f"{kept}; free some disk space or choose another path.") from None
    return path


def _write_failure(error, path):
    """Why writing failed, in a few words (torch.save reports a full disk as an opaque RuntimeError)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(path.parent).free
        if free < 64 * 2**20:
            return f"the disk is full: {free / 2**20:.1f} MiB free"
    return f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"


def load_checkpoint(path, map_location="cpu"):
    """Read a checkpoint written by ``fit`` with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise checks.refuse(f"checkpoint {str(path)!r} does not exist; train with Checkpoint(that path) first")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt or foreign file: one sentence, not a traceback
        raise checks.refuse(f"checkpoint {str(path)!r} cannot be read: it is truncated, damaged or not a checkpoint "
                            f"({type(e).__name__}); delete it or point to a checkpoint written by nin_lib") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise checks.refuse(f"checkpoint {str(path)!r} was not written by nin_lib's fit; delete it or use another path")
    return state


def _mismatch(path, state, net, error):
    """The Refusal saying in one sentence how a checkpoint differs from ``net`` (not PyTorch's key dump)."""
    theirs, ours = state.get("model") or {}, net.state_dict()
    preset = (state.get("meta") or {}).get("preset") or {}
    made = f" (it was made with preset {preset['name']!r}, width {preset.get('width')})" if preset.get("name") else ""

    def size(tensors, key):
        return "×".join(map(str, tensors[key].shape)) if key in tensors else "missing"

    differ = [k for k in {**ours, **theirs} if size(ours, k) != size(theirs, k)]
    if differ:
        what = f"a different model{made}: {differ[0]} is {size(theirs, differ[0])} there and {size(ours, differ[0])} here"
    else:
        what = f"a different optimiser or schedule{made} ({str(error).splitlines()[0][:80]})"
    return checks.refuse(f"checkpoint {str(path)!r} holds {what}; resume with the settings it was made with "
                         "or use another path")


# How a run ends early

class EndOfRun(Exception):
    """Raised inside ``fit`` to end the run early; ``fit`` catches it (the net and the history stay).

    ``stopped``: the history counts the run as stopped; ``keeps_epoch``: the epoch it cut short is recorded.
    """
    stopped, keeps_epoch = True, True
    reason = property(lambda self: self.args[0])  # the one sentence: why the run ended


class StopRequested(EndOfRun):
    """The ``Stop`` event was set (the panel's Stop button)."""


class Interrupted(EndOfRun):
    """Ctrl-C or a kernel interrupt (KeyboardInterrupt)."""


class OutOfMemory(EndOfRun):
    """A batch or an image too big for the device's memory."""


class LossNotFinite(EndOfRun):
    """The training loss became NaN or infinite (``NaNGuard``): the last good weights are restored."""
    keeps_epoch = False


class MaxStepsReached(EndOfRun):
    """``MaxSteps`` training batches are done (benchmarks, tests): not a stop."""
    stopped = False


class CheckpointFailed(EndOfRun):
    """A checkpoint could not be written (a full disk); the previous one stays as it was."""


def is_out_of_memory(error):
    """True for an out-of-memory error of any device (CUDA, Apple MPS, the CPU allocator)."""
    if isinstance(error, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# Callbacks

class Callback:
    """A hook into ``fit`` (lesson 05). Override the events you need; each gets the ``Training`` as ``run``.
    Callbacks run in the order of ``order`` (lower first); the user's own have order 0."""
    order = 0

    def on_train_begin(self, run): """Once, before the first epoch (the net is on its device)."""
    def on_epoch_begin(self, run): """Before each epoch's first batch."""
    def on_batch_begin(self, run): """After ``run.X``, ``run.y`` are on the device, before the forward pass."""
    def on_backward(self, run): """After the backward pass, before the optimiser's step."""
    def on_step(self, run): """After the optimiser's step."""
    def on_batch_end(self, run): """After each training batch (``run.batch``, ``run.loss``, ``run.mean_loss``)."""
    def on_epoch_end(self, run): """After each epoch that trained a batch (also one cut short): ``run.record``."""
    def on_cancel(self, run, end): """When an ``EndOfRun`` ends the run early (after the last ``on_epoch_end``)."""
    def on_train_end(self, run): """Once at the end, however the run ended."""


class MixedPrecision(Callback):
    """bf16 autocast for the forward pass and the loss: 'auto' on CUDA only (its tensor cores), or True/False."""
    order = -20

    def __init__(self, enabled="auto"):
        self.enabled = checks.auto_flag("mixed precision", enabled)

    def on_train_begin(self, run):
        run.amp = runtime.uses_amp(self.enabled, run.device)


class ChannelsLast(Callback):
    """channels_last memory for the net and every batch: 'auto' on CUDA and the CPU, or True/False."""
    order = -20

    def __init__(self, enabled="auto"):
        self.enabled = checks.auto_flag("channels_last", enabled)

    def on_train_begin(self, run):
        run.channels_last = runtime.uses_channels_last(self.enabled, run.device)
        if run.channels_last:
            run.net.to(memory_format=torch.channels_last)


class CPUThreads(Callback):
    """On a CPU, torch threads as the CPU quota allows (``runtime.follow_cpu_quota``), or ``threads`` for this run."""
    order = -30

    def __init__(self, threads=None):
        self.threads = checks.whole_number("threads", threads, 1, 1024, none=True)
        self.before = None

    def on_train_begin(self, run):
        if run.device.type == "cpu":
            self.before = torch.get_num_threads()
            runtime.follow_cpu_quota(self.threads)

    def on_train_end(self, run):
        if self.threads is not None and self.before is not None:
            torch.set_num_threads(self.before)


class Compile(Callback):
    """Train through ``torch.compile(net)`` (CUDA; its compile time counts in the first epoch)."""
    order = -10

    def on_train_begin(self, run):
        run.model = torch.compile(run.net)


class Meta(Callback):
    """Store ``info`` (e.g. the preset) in the history and the checkpoints."""
    order = -40

    def __init__(self, **info):
        self.info = info

    def on_train_begin(self, run):
        run.history.meta.update(copy.deepcopy(self.info))


class Schedule(Callback):
    """Step a learning-rate scheduler (one-cycle, cosine) after every batch; a fixed-length one must cover the run."""
    order = -8

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def on_train_begin(self, run):
        run.scheduler = self.scheduler  # what checkpoints save and resume

    def on_epoch_begin(self, run):
        total, n = getattr(self.scheduler, "total_steps", None), run.num_batches
        if total is not None and n and total < run.num_epochs * n:
            raise checks.refuse(f"the learning-rate schedule covers {total} batches but {run.num_epochs} epochs of "
                                f"{n} batches need {run.num_epochs * n}" +
                                (f"; resume with the number of epochs the checkpoint was made for ({total // n})"
                                 if run.start_epoch else "; build the schedule for this many epochs"))

    def on_step(self, run):
        self.scheduler.step()


class GradClip(Callback):
    """Scale the gradients so that their total norm is at most ``max_norm`` (d2l's ``gradient_clip_val``)."""

    def __init__(self, max_norm):
        self.max_norm = checks.number("max_norm", max_norm, 0, low_open=True, example=1.0)

    def on_backward(self, run):
        nn.utils.clip_grad_norm_(run.net.parameters(), self.max_norm)


class NaNGuard(Callback):
    """End the run when the loss becomes NaN or infinite, with the last epoch's good weights put back. It looks
    every ``check_every`` batches and at each epoch's end (default: every batch on a CPU, every 50 on a GPU,
    where a look waits for it)."""
    order = 10

    def __init__(self, check_every=None):
        self.check_every = checks.whole_number("check_every", check_every, 1, none=True)

    def on_train_begin(self, run):
        self.every = self.check_every or (1 if run.device.type == "cpu" or not run.num_batches else 50)

    def on_epoch_begin(self, run):
        run.snapshot()

    def on_batch_end(self, run):
        if run.batch % self.every == 0 or run.batch == run.num_batches:
            value = run.sums[0].item()
            if not math.isfinite(value):
                restored = f"the weights after epoch {run.epoch}" if run.epoch else "the starting weights"
                raise LossNotFinite(f"the training loss became {value} in epoch {run.epoch + 1} (the learning rate "
                                    f"is probably too high); training stopped and {restored} were restored")

    def on_cancel(self, run, end):
        if isinstance(end, LossNotFinite):
            run.restore(run.snapshot())


class Checkpoint(Callback):
    """Save every finished epoch to ``path`` atomically (model, optimiser, schedule, RNG states, history); after a
    stop, an interrupt or running out of memory, (re)write the last epoch boundary. ``resume=True`` first loads
    ``path`` (if it exists) and continues after its last epoch."""
    order = 50  # after the user's callbacks: a checkpoint that cannot be written ends the run last

    def __init__(self, path, resume=False, verbose=True):
        self.path, self.resume, self.verbose = Path(path), checks.flag("resume", resume), verbose

    def on_train_begin(self, run):
        if self.resume:
            run.start_epoch = self._load(run)

    def on_epoch_begin(self, run):
        run.snapshot()  # the boundary a stop in this epoch writes

    def on_epoch_end(self, run):
        if run.epochs_done == run.epoch + 1:  # a whole epoch
            try:
                save_checkpoint(self.path, run.snapshot())
            except CheckpointError as error:  # a full disk: stop, keep the net, the history and the old file
                raise CheckpointFailed(f"{str(error).rstrip('.')}; training stopped after epoch {run.epoch + 1} and "
                                       "the model keeps its weights") from None

    def on_cancel(self, run, end):
        if isinstance(end, (StopRequested, Interrupted, OutOfMemory)):
            try:
                save_checkpoint(self.path, run.snapshot())
            except CheckpointError as error:
                run.history.reason += f"; {str(error).rstrip('.')}"

    def _load(self, run):
        if not self.path.is_file():
            if self.verbose:
                print(f"no checkpoint at {self.path.name} yet; starting from epoch 1")
            return 0
        state = load_checkpoint(self.path)  # on the CPU: RNG states must stay CPU tensors
        try:
            run.restore(state)
        except (RuntimeError, KeyError, ValueError) as e:
            raise _mismatch(self.path, state, run.net, e) from None
        set_rng_state(state["rng"])
        saved = History.from_dict(state["history"])
        run.history.epochs, run.history.meta = saved.epochs, {**saved.meta, **run.history.meta}
        if self.verbose:
            print(f"resuming from {self.path.name} after epoch {state['epoch']}")
        return state["epoch"]


class Stop(Callback):
    """End the run after the current batch once ``event`` (a ``threading.Event``) is set (the panel's Stop)."""
    order = 20

    def __init__(self, event):
        self.event = event

    def on_epoch_begin(self, run):
        if self.event.is_set():
            raise StopRequested(f"stopped by request in {run.where()}; the model keeps its weights")

    def on_batch_end(self, run):
        if self.event.is_set() and run.batch != run.num_batches:  # after the last batch the epoch finishes
            raise StopRequested(f"stopped by request in {run.where()}; the model keeps its weights")


class MaxSteps(Callback):
    """End the run after ``n`` training batches (benchmarks, tests); the epoch it cuts is tested as usual."""
    order = 30

    def __init__(self, n):
        self.n = checks.whole_number("max_steps", n, 1)

    def on_batch_end(self, run):
        if run.global_step >= self.n:
            raise MaxStepsReached(f"reached max_steps={self.n} in {run.where()}")


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss, and one printed sentence when the run ends early (unless a
    ``PrintEpochs`` prints it). ``ProgressBar(False)``: neither; ``ProgressBar(False, say_why=True)``: the sentence."""
    order = 40

    def __init__(self, enabled=True, say_why=None):
        self.enabled, self.bar = checks.flag("enabled", enabled), None
        self.say_why = enabled if say_why is None else checks.flag("say_why", say_why)

    def on_epoch_begin(self, run):
        if self.enabled:
            from tqdm.auto import tqdm  # only when a bar is wanted: it may import ipywidgets
            self.bar = tqdm(total=run.num_batches, desc=f"epoch {run.epoch + 1}/{run.num_epochs}", leave=False,
                            unit="batch", dynamic_ncols=True)

    def on_batch_end(self, run):
        if self.bar is not None:
            self.bar.update(1)
            if run.batch % 50 == 0:
                self.bar.set_postfix(loss=f"{run.mean_loss:.3f}", refresh=False)

    def on_epoch_end(self, run):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_end(self, run):
        self.on_epoch_end(run)
        if self.say_why and run.history.stopped and not any(isinstance(c, PrintEpochs) for c in run.callbacks):
            print(run.history.reason)


class PrintEpochs(Callback):
    """Print one line per epoch, and why the run ended early (what the command line shows)."""
    order = 40

    def __init__(self, num_epochs=None, file=None):
        self.num_epochs, self.file = num_epochs, file

    def on_epoch_end(self, run):
        print(format_epoch(run.record, self.num_epochs or run.num_epochs), file=self.file, flush=True)

    def on_train_end(self, run):
        if run.history.stopped:
            print(run.history.reason, file=self.file, flush=True)


STANDARD = (MixedPrecision, ChannelsLast, CPUThreads, NaNGuard, ProgressBar)  # what fit adds unless given


# The training loop

class Training:
    """One ``fit`` run as its callbacks see it (``run``): the pieces, where the loop is, and the epoch's sums."""

    def __init__(self, net, optimizer, loss, device, num_epochs, num_batches, callbacks):
        self.net = self.model = net
        self.optimizer, self.loss_fn, self.device = optimizer, loss, device
        self.num_epochs, self.num_batches = num_epochs, num_batches
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.history = History()
        self.amp = self.channels_last = False  # set by MixedPrecision and ChannelsLast
        self.scheduler = None  # set by Schedule
        self.start_epoch = self.epoch = self.epochs_done = self.global_step = self.batch = self.images = 0
        self.loss, self.last_shape, self._snapshot = None, None, None

    def emit(self, event, *args):
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    def train_step(self, X, y):
        """Forward, loss, backward, step, with the callbacks' hooks between them."""
        self.last_shape = tuple(X.shape)
        self.X, self.y = _to_device(X, y, self.device, self.channels_last)
        self.emit("on_batch_begin")
        self.optimizer.zero_grad(set_to_none=True)
        with runtime.autocast(self.device, self.amp):
            self.y_hat = self.model(self.X)
            self.loss = self.loss_fn(self.y_hat, self.y)
        self.loss.backward()
        self.emit("on_backward")
        self.optimizer.step()
        self.emit("on_step")
        with torch.no_grad():  # added up on the device; read only when needed
            self.sums[0] += self.loss.detach().double() * self.y.shape[0]
            self.sums[1] += (self.y_hat.argmax(dim=1) == self.y).sum()
        self.batch, self.images, self.global_step = self.batch + 1, self.images + self.y.shape[0], self.global_step + 1
        self.emit("on_batch_end")

    def start_epoch_sums(self):
        """The epoch's loss sum and correct count (tensors on the device) and its batch and image counts, at 0."""
        self.sums = [torch.zeros((), dtype=torch.float64, device=self.device),
                     torch.zeros((), dtype=torch.int64, device=self.device)]
        self.batch = self.images = 0

    mean_loss = property(lambda self: self.sums[0].item() / self.images)
    accuracy = property(lambda self: self.sums[1].item() / self.images)
    record = property(lambda self: self.history.last)

    def end_epoch(self, test_iter, partial=False, tested=True):
        """Record the epoch (with a test pass if ``tested``) and call ``on_epoch_end``."""
        runtime.sync(self.device)
        train_seconds = time.perf_counter() - self.started
        test_acc = None
        if test_iter is not None and tested:
            test_acc = evaluate(self.net, test_iter, self.device, amp=self.amp, channels_last=self.channels_last)
        record = {"epoch": self.epoch + 1, "loss": self.mean_loss, "train_acc": self.accuracy, "test_acc": test_acc,
                  "seconds": time.perf_counter() - self.started, "train_seconds": train_seconds,
                  "images_per_s": self.images / max(train_seconds, 1e-9), "images": self.images,
                  "lr": self.optimizer.param_groups[0]["lr"]}
        if partial:
            record.update(partial=True, batches=self.batch, num_batches=self.num_batches)
        else:
            self.epochs_done = self.epoch + 1
        self.history.epochs.append(record)
        self.emit("on_epoch_end")

    def cut_short(self, error, test_iter):
        """The ``EndOfRun`` for an error inside an epoch, after recording what the epoch did (if it keeps it)."""
        end = self.ending(error)
        if end.keeps_epoch and self.images:
            whole = self.num_batches is not None and self.batch == self.num_batches
            self.end_epoch(test_iter, partial=not whole, tested=isinstance(end, MaxStepsReached))
        return end

    def ending(self, error):
        """The ``EndOfRun`` an error means; any other error is raised as it is (a bad input: one sentence)."""
        if isinstance(error, EndOfRun):
            return error
        if isinstance(error, KeyboardInterrupt):
            return Interrupted(f"interrupted (KeyboardInterrupt) in {self.where()}; the model keeps its weights")
        if is_out_of_memory(error):
            shape = self.last_shape
            what = f" (a batch of {shape[0]} images of {shape[-2]}×{shape[-1]} px)" if shape and len(shape) == 4 else ""
            return OutOfMemory(f"out of memory on {self.device.type} in {self.where(1)}{what}; use a smaller batch "
                               "size or image size and train again; the model keeps its weights")
        if isinstance(error, RuntimeError) and self.last_shape is not None and len(self.last_shape) == 4:
            shapes.check_input(self.net, self.last_shape)  # an input the net cannot take: one sentence
        raise error

    def cancel(self, end):
        """Note how the run ended and let the callbacks act on it (restore, checkpoint)."""
        self.history.stopped, self.history.reason = end.stopped, end.reason
        if isinstance(end, OutOfMemory):
            self.optimizer.zero_grad(set_to_none=True)  # drop the gradients and give cached GPU memory back
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.emit("on_cancel", end)

    def where(self, ahead=0):
        """'epoch 2' or, inside an epoch, 'epoch 2, batch 37/79' (``ahead``: the batch that failed)."""
        batch = self.batch + ahead
        return f"epoch {self.epoch + 1}" + (f", batch {batch}/{self.num_batches}" if batch and self.num_batches else "")

    def snapshot(self):
        """The state at the last epoch boundary (model, optimiser, schedule, RNG states, history): what a checkpoint
        holds and what a NaN loss goes back to, copied once per epoch however many callbacks ask."""
        if self._snapshot is None or self._snapshot["epoch"] != self.epochs_done:
            self._snapshot = {
                "format": CHECKPOINT_FORMAT, "epoch": self.epochs_done,
                "model": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "scheduler": copy.deepcopy(self.scheduler.state_dict()) if self.scheduler is not None else None,
                "rng": rng_state(), "history": History([e for e in self.history if not e.get("partial")]).to_dict(),
                "meta": copy.deepcopy(self.history.meta)}
        return self._snapshot

    def restore(self, state):
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])


def _with_standard(callbacks):
    """The given callbacks, checked, plus a standard one of each class in ``STANDARD`` that is not given."""
    callbacks = list(callbacks or ())
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise checks.refuse(f"callbacks[{i}] {cb!r} is not allowed; use train.Callback objects (subclass "
                                "train.Callback and override on_epoch_end, on_batch_end, ...)")
    return callbacks + [kind() for kind in STANDARD if not any(isinstance(cb, kind) for cb in callbacks)]


def fit(net, train_iter, test_iter=None, *, num_epochs, lr=None, optimizer=None, loss=None, device=None,
        callbacks=()):
    """Train ``net`` on the batches of ``train_iter`` for ``num_epochs`` (lesson 05; d2l's ``train_ch6`` made fast
    and safe); test on ``test_iter`` after each epoch (None: no test). ``lr`` gives plain SGD as in the book, or
    pass an ``optimizer``; ``loss`` defaults to cross-entropy; ``device`` 'auto' | 'cpu' | 'cuda' | 'mps' (None:
    where the net is). ``callbacks`` add everything else (see the module's docstring). Returns a ``History``."""
    checks.whole_number("num_epochs", num_epochs, 1)
    if (lr is None) == (optimizer is None):
        raise checks.refuse("give fit either lr (plain SGD, as in the book) or an optimizer, not both and not neither")
    device = _device_of(net) if device is None else runtime.pick_device(device)
    net.to(device)
    if optimizer is None:
        optimizer = torch.optim.SGD(net.parameters(), lr=checks.learning_rate(lr))
    num_batches = len(train_iter) if hasattr(train_iter, "__len__") else None
    loss = loss if loss is not None else nn.CrossEntropyLoss()
    run = Training(net, optimizer, loss, device, num_epochs, num_batches, _with_standard(callbacks))
    try:
        run.emit("on_train_begin")
        run.history.meta.update(device=runtime.describe_device(device), amp=run.amp, channels_last=run.channels_last,
                                compile=run.model is not net)
        run.epochs_done = run.start_epoch
        for run.epoch in range(run.start_epoch, num_epochs):
            run.start_epoch_sums()
            run.emit("on_epoch_begin")
            if hasattr(train_iter, "set_epoch"):  # data.Batches: each epoch's order is reproducible
                train_iter.set_epoch(run.epoch)
            net.train()
            run.started = time.perf_counter()
            try:
                for X, y in train_iter:
                    run.train_step(X, y)
            except (Exception, KeyboardInterrupt) as error:
                raise run.cut_short(error, test_iter) from None
            if run.images == 0:
                raise checks.refuse(f"train_iter gave no batches in epoch {run.epoch + 1}; give fit an iterable of "
                                    "at least one (X, y) batch")
            run.end_epoch(test_iter)
    except (Exception, KeyboardInterrupt) as error:
        run.cancel(run.ending(error))
    finally:
        run.emit("on_train_end")
    return run.history
