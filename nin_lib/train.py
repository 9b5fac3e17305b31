"""Training NiN (lesson 05): ``evaluate``, ``fit``, a ``History``, callbacks and checkpoints.

One loop serves CPU, CUDA and Apple MPS. Batches come from ``data.Batches`` (already on the
device, resized there); any iterable of ``(X, y)`` works too. The device policy (bf16 autocast on
CUDA, channels_last, CPU threads that follow the CPU quota) is ``runtime``'s.

How a run ends early is an exception class (fastai's learner does the same): ``StopRequested``
(the panel's Stop button), ``Interrupted`` (Ctrl-C, a kernel interrupt), ``OutOfMemory``,
``LossNotFinite``, ``MaxStepsReached`` and ``CheckpointFailed`` (a full disk). ``fit`` catches them,
and whatever the ending:

* the net keeps its weights and ``fit`` returns the ``History`` of every epoch that trained at least
  one batch (an epoch cut short is marked ``partial``); ``history.reason`` says in one sentence why it
  ended; every epoch gets the same callbacks in the same order;
* a NaN or infinite loss restores the weights of the last good epoch instead;
* with ``checkpoint=PATH`` every finished epoch is saved atomically (model, optimiser, scheduler, RNG
  states, history); a stop, an interrupt or running out of memory (re)writes the last finished epoch, so
  ``fit(..., resume=True)`` continues exactly there: on a CPU with the same seed a resumed run gives the
  same numbers as an uninterrupted one; a checkpoint that cannot be written leaves the previous one as it was.
"""
import contextlib
import copy
import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import checks, runtime, shapes
from .runtime import atomic_path, autocast

CHECKPOINT_FORMAT = "nin-lib-checkpoint-1"


# ---------------------------------------------------------------------------------------------
# History

class History:
    """Per-epoch results of ``fit`` (lesson 05): loss, train/test accuracy, seconds and images/s.

    ``history.epochs`` is a list of dicts with keys ``epoch`` (1-based), ``loss``, ``train_acc``,
    ``test_acc`` (None without a test set or for a partial epoch), ``seconds`` (training plus
    evaluation), ``train_seconds``, ``images_per_s`` (training images per training second),
    ``images``, ``lr`` (at the end of the epoch) and ``partial`` (True for an epoch cut short).
    ``stopped`` is True when the run ended early by a stop, an interrupt, a bad loss, running out of
    memory or a full disk, and ``reason`` says why in one sentence.
    """

    def __init__(self, epochs=None, stopped=False, reason=None, meta=None):
        self.epochs = list(epochs or [])
        self.stopped = stopped
        self.reason = reason
        self.meta = dict(meta or {})

    def __len__(self):
        return len(self.epochs)

    def __iter__(self):
        return iter(self.epochs)

    def __getitem__(self, i):
        return self.epochs[i]

    def column(self, key, full_only=False):
        """One value per epoch, e.g. ``history.column('test_acc')``."""
        return [e.get(key) for e in self.epochs if not (full_only and e.get("partial"))]

    @property
    def loss(self):
        return self.column("loss")

    @property
    def train_acc(self):
        return self.column("train_acc")

    @property
    def test_acc(self):
        return self.column("test_acc")

    @property
    def completed_epochs(self):
        """Number of epochs that ran to the end."""
        return sum(1 for e in self.epochs if not e.get("partial"))

    @property
    def last(self):
        """The last epoch's record (a dict), or None before the first epoch."""
        return self.epochs[-1] if self.epochs else None

    @property
    def final_test_acc(self):
        """Test accuracy of the last epoch that has one, or None."""
        for e in reversed(self.epochs):
            if e.get("test_acc") is not None:
                return e["test_acc"]
        return None

    @property
    def total_seconds(self):
        return sum(e.get("seconds") or 0.0 for e in self.epochs)

    @property
    def images(self):
        """Training images seen over all epochs."""
        return sum(e.get("images", 0) for e in self.epochs)

    @property
    def images_per_s(self):
        """Training images per second of training (evaluation not counted), over all epochs."""
        seconds = sum(e.get("train_seconds") or 0.0 for e in self.epochs)
        return self.images / seconds if seconds > 0 else 0.0

    def trained(self):
        """What was trained, in words: '2 epoch(s)', '1 epoch(s) and 37 of 79 batches of epoch 2', or
        '37 of 79 batches of epoch 1' for a run stopped in its first epoch."""
        full = self.completed_epochs
        text = f"{full} epoch(s)" if full or not self.epochs else ""
        partial = next((e for e in self.epochs if e.get("partial")), None)
        if partial is not None:
            part = (f"{partial['batches']} of {partial['num_batches']} batches" if partial.get("num_batches")
                    else f"{partial['images']:,} images") + f" of epoch {partial['epoch']}"
            text = f"{text} and {part}" if text else part
        return text

    def full_epochs(self):
        """A copy holding only the epochs that ran to the end (what a checkpoint stores)."""
        return History([e for e in self.epochs if not e.get("partial")], meta=self.meta)

    def to_dict(self):
        return {"epochs": copy.deepcopy(self.epochs), "stopped": self.stopped,
                "reason": self.reason, "meta": copy.deepcopy(self.meta)}

    @classmethod
    def from_dict(cls, d):
        return cls(d.get("epochs"), d.get("stopped", False), d.get("reason"), d.get("meta"))

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
        if not self.epochs:
            text = "no epoch finished"
        else:
            e = self.epochs[-1]
            text = (f"{self.trained()}: loss {e['loss']:.3f}, train acc {e['train_acc']:.3f}, "
                    f"test acc {_fmt(self.final_test_acc)}, {self.total_seconds:.1f} s, "
                    f"{self.images_per_s:,.0f} images/s")
        if self.stopped or self.reason:
            text += f" ({self.reason})"
        return text

    def __repr__(self):
        return f"History({self.summary()})"


def _fmt(x):
    return "n/a" if x is None else f"{x:.3f}"


def format_epoch(record, num_epochs=None):
    """The line printed for one epoch, d2l style: 'epoch 3/10: loss 0.512, train acc 0.812, ...'."""
    of = f"/{num_epochs}" if num_epochs else ""
    part = " (partial)" if record.get("partial") else ""
    return (f"epoch {record['epoch']}{of}{part}: loss {record['loss']:.3f}, "
            f"train acc {record['train_acc']:.3f}, test acc {_fmt(record.get('test_acc'))}, "
            f"{record['seconds']:.1f} s, {record['images_per_s']:,.0f} images/s")


# ---------------------------------------------------------------------------------------------
# Evaluation

def _device_of(net):
    for p in net.parameters():
        return p.device
    return torch.device("cpu")


def _resolve_device(net, device):
    return _device_of(net) if device is None else runtime.pick_device(device)


def _to_device(X, y, device, channels_last):
    X = X.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if channels_last and X.dim() == 4 and not X.is_contiguous(memory_format=torch.channels_last):
        X = X.contiguous(memory_format=torch.channels_last)
    return X, y


@contextlib.contextmanager
def _eval_mode(net):
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        net.train(was_training)


def evaluate(net, data_iter, device=None, *, loss=None, return_loss=False, amp="auto", channels_last="auto"):
    """Accuracy of ``net`` on ``data_iter`` (lesson 05; d2l's ``evaluate_accuracy_gpu``).

    Returns the accuracy as a float; with ``return_loss=True`` returns ``(accuracy, mean loss)``
    (``loss`` defaults to cross-entropy). The net is put in eval mode and back afterwards.
    """
    device = _resolve_device(net, device)
    use_amp, cl = runtime.uses_amp(amp, device), runtime.uses_channels_last(channels_last, device)
    loss = loss if loss is not None else nn.CrossEntropyLoss()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    with _eval_mode(net):
        for X, y in data_iter:
            X, y = _to_device(X, y, device, cl)
            with autocast(device, use_amp):
                y_hat = net(X)
            correct += (y_hat.argmax(dim=1) == y).sum()
            if return_loss:
                loss_sum += loss(y_hat.float(), y).double() * y.shape[0]
            count += y.shape[0]
    if count == 0:
        raise checks.refuse("the evaluation data yielded no examples; give it at least one batch")
    accuracy = correct.item() / count
    return (accuracy, loss_sum.item() / count) if return_loss else accuracy


def predict(net, data_iter, device=None, *, amp="auto", channels_last="auto"):
    """All labels and predictions over ``data_iter`` as CPU tensors ``(y, y_hat)`` (lesson 05's
    confusion matrix and misclassified images)."""
    device = _resolve_device(net, device)
    use_amp, cl = runtime.uses_amp(amp, device), runtime.uses_channels_last(channels_last, device)
    ys, preds = [], []
    with _eval_mode(net):
        for X, y in data_iter:
            X, y = _to_device(X, y, device, cl)
            with autocast(device, use_amp):
                preds.append(net(X).argmax(dim=1).cpu())
            ys.append(y.cpu())
    return torch.cat(ys), torch.cat(preds)


def confusion_matrix(y, y_hat, num_classes=10):
    """counts[i, j] = how many examples of true class i were predicted as class j (lesson 05)."""
    y, y_hat = torch.as_tensor(y).long().flatten(), torch.as_tensor(y_hat).long().flatten()
    if y.shape != y_hat.shape:
        raise checks.refuse(f"labels {tuple(y.shape)} and predictions {tuple(y_hat.shape)} must have the same length")
    index = y * num_classes + y_hat
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


# ---------------------------------------------------------------------------------------------
# Checkpoints

def rng_state():
    """The random-number states a resumed run needs: torch (CPU, CUDA), Python, NumPy."""
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": {"version": version, "internal": list(internal), "gauss": gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached": float(cached)}
    except ImportError:
        pass
    return state


def set_rng_state(state):
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    py = state.get("python")
    if py:
        random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "numpy" in state:
        try:
            import numpy as np
            n = state["numpy"]
            np.random.set_state((n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"]))
        except ImportError:
            pass


class CheckpointError(OSError):
    """A checkpoint could not be written (a full disk, no permission); the previous one is unchanged."""


def save_checkpoint(path, state):
    """Write a checkpoint atomically (``runtime.atomic_path``): the previous one stays until the new one is whole.

    If writing fails (a full disk, no permission) the previous checkpoint stays as it was and
    ``CheckpointError`` says so in one sentence.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as e:  # a full disk: OSError from Python, RuntimeError from torch.save
        kept = "the previous checkpoint there is unchanged" if path.exists() else "no checkpoint was written"
        error = CheckpointError(f"checkpoint {str(path)!r} could not be written ({_write_failure(e, path)}); "
                                f"{kept}; free some disk space or choose another path.")
        error.errno = getattr(e, "errno", None)
        raise error from None
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
        raise checks.refuse(f"checkpoint {str(path)!r} does not exist; train with checkpoint=that path first")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt or foreign file: one sentence, not a traceback
        raise checks.refuse(f"checkpoint {str(path)!r} cannot be read: it is truncated, damaged or not a checkpoint "
                            f"({type(e).__name__}); delete it or point to a checkpoint written by nin_lib") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise checks.refuse(f"checkpoint {str(path)!r} was not written by nin_lib's fit; delete it or use another path")
    return state


def _mismatch(checkpoint, state, net, error):
    """A ValueError saying in one sentence how a checkpoint differs from ``net`` (not PyTorch's key dump)."""
    theirs = state.get("model") if isinstance(state.get("model"), dict) else {}
    ours = net.state_dict()
    preset = (state.get("meta") or {}).get("preset") or {}
    made = (f" (it was made with preset {preset.get('name')!r}, arch {preset.get('arch')}, width {preset.get('width')})"
            if preset.get("name") else "")
    only_ours = [k for k in ours if k not in theirs]
    only_theirs = [k for k in theirs if k not in ours]
    shaped = [k for k in ours if k in theirs and tuple(theirs[k].shape) != tuple(ours[k].shape)]
    dims = lambda t: "×".join(map(str, t.shape)) or "a scalar"  # noqa: E731
    if shaped:
        what = f"a different model{made}: {shaped[0]} is {dims(theirs[shaped[0]])} there and {dims(ours[shaped[0]])} here"
    elif only_ours or only_theirs:
        key, where = (only_ours[0], "only in this net") if only_ours else (only_theirs[0], "only in the checkpoint")
        what = (f"a different model{made}: {len(only_ours) + len(only_theirs)} tensor name(s) differ, "
                f"such as {key}, {where}")
    else:
        what = f"a different optimiser or schedule{made} ({str(error).splitlines()[0][:80]})"
    return checks.refuse(f"checkpoint {str(checkpoint)!r} holds {what}; resume with the settings it was made with "
                         "or use another path")


# ---------------------------------------------------------------------------------------------
# Callbacks

class Callback:
    """Base class for ``fit`` callbacks (lesson 05); override what you need.

    A plain function passed in ``callbacks`` is called as ``fn(record, history)`` after each epoch.
    """

    def on_train_begin(self, info):
        """Called once before the first batch; ``info`` is a dict (num_epochs, start_epoch, num_batches, device)."""

    def on_batch_end(self, step):
        """Called after every training batch with a ``Step``."""

    def on_epoch_end(self, record, history):
        """Called after every epoch that trained at least one batch (also one cut short) with its record."""

    def on_train_end(self, history):
        """Called once at the end, however the run ended."""


class Step:
    """What ``on_batch_end`` sees: epoch (1-based), batch (1-based), num_batches, global step, images seen
    this epoch, the batch loss (``step.loss``), and the epoch's running mean loss and accuracy so far
    (``step.mean_loss``, ``step.accuracy``). Reading a number waits for the GPU: read it only when you need it."""

    __slots__ = ("epoch", "batch", "num_batches", "global_step", "images", "_loss", "_sums")

    def __init__(self, epoch, batch, num_batches, global_step, images, loss, sums):
        self.epoch, self.batch, self.num_batches = epoch, batch, num_batches
        self.global_step, self.images, self._loss, self._sums = global_step, images, loss, sums

    @property
    def loss(self):
        return float(self._loss)

    @property
    def mean_loss(self):
        return self._sums.loss_sum.item() / self.images

    @property
    def accuracy(self):
        return self._sums.correct.item() / self.images

    def __repr__(self):
        return f"Step(epoch={self.epoch}, batch={self.batch}/{self.num_batches})"


class PrintEpochs(Callback):
    """Print one line per epoch (what the command line shows)."""

    def __init__(self, num_epochs=None, file=None):
        self.num_epochs, self.file = num_epochs, file

    def on_epoch_end(self, record, history):
        print(format_epoch(record, self.num_epochs), file=self.file, flush=True)


class _Callbacks:
    """The run's callbacks, called by event name; a plain function is an ``on_epoch_end``."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks or ())

    def __call__(self, name, *args):
        for cb in self.callbacks:
            method = getattr(cb, name, None)
            if method is None and name == "on_epoch_end" and callable(cb) and not isinstance(cb, Callback):
                method = cb
            if method is not None:
                method(*args)


# ---------------------------------------------------------------------------------------------
# How a run ends early

class EndOfRun(Exception):
    """Raised inside ``fit`` to end the run early; ``fit`` catches it (the net and the history stay).

    ``stopped``: whether the history counts the run as stopped; ``keeps_epoch``: whether the epoch it cut
    short goes into the history; ``checkpoint``: whether the last epoch boundary is (re)written.
    """
    stopped, keeps_epoch, checkpoint = True, True, True

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason
        self.sums = None  # the numbers of the epoch it cut short, set on the way out of the epoch


class StopRequested(EndOfRun):
    """The ``stop`` event was set (the panel's Stop button)."""


class Interrupted(EndOfRun):
    """Ctrl-C or a kernel interrupt (KeyboardInterrupt)."""


class OutOfMemory(EndOfRun):
    """A batch or an image too big for the device's memory."""


class LossNotFinite(EndOfRun):
    """The training loss became NaN or infinite: the last good weights are restored."""
    keeps_epoch, checkpoint = False, False


class MaxStepsReached(EndOfRun):
    """``max_steps`` training batches are done (benchmarks, tests): not a stop."""
    stopped, checkpoint = False, False


class CheckpointFailed(EndOfRun):
    """A checkpoint could not be written (a full disk); the previous one stays as it was."""
    checkpoint = False


def _where(epoch, batch=None, num_batches=None):
    return f"epoch {epoch + 1}" + (f", batch {batch}/{num_batches}" if batch and num_batches else "")


def _out_of_memory(epoch, batch, num_batches, shape, device):
    """The advice for running out of memory; ``batch`` batches had finished, the next one failed."""
    where = _where(epoch, batch + 1, num_batches) if batch is not None and num_batches else _where(epoch)
    what = (f" (a batch of {shape[0]} images of {shape[-2]}×{shape[-1]} px)"
            if shape is not None and len(shape) == 4 else "")
    return OutOfMemory(f"out of memory on {torch.device(device).type} in {where}{what}; use a smaller batch size "
                       "or image size and train again; the model keeps its weights")


def is_out_of_memory(error):
    """True for an out-of-memory error of any device (CUDA, Apple MPS, the CPU allocator)."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, oom):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _explain_input_error(net, error, shape):
    """Turn PyTorch's error for an image too small for the net into shapes' one sentence (if that is the cause)."""
    if not isinstance(error, RuntimeError) or shape is None or len(shape) != 4:
        return
    try:
        shapes.check_input_size(net, tuple(shape[-2:]), in_channels=shape[1])
    except shapes.InputTooSmallError as too_small:
        raise too_small from None
    except Exception:  # a net that shapes cannot follow: keep PyTorch's own error
        return


# ---------------------------------------------------------------------------------------------
# The training loop

@dataclass
class EpochSums:
    """What one pass over the training batches has added up so far (on the device until read)."""
    loss_sum: torch.Tensor
    correct: torch.Tensor
    images: int = 0
    batches: int = 0
    started: float = 0.0
    train_seconds: float = 0.0

    @classmethod
    def start(cls, device):
        return cls(torch.zeros((), dtype=torch.float64, device=device), torch.zeros((), dtype=torch.int64, device=device),
                   started=time.perf_counter())


def _num_batches(it):
    try:
        return len(it)
    except TypeError:
        return None


def _check_schedule_length(scheduler, num_epochs, num_batches, start_epoch):
    """A schedule with a fixed length (one-cycle) must cover every batch of the run."""
    total = getattr(scheduler, "total_steps", None)
    if total is None or num_batches is None:
        return
    needed = num_epochs * num_batches
    if total < needed:
        made_for = total // num_batches if num_batches else "?"
        raise checks.refuse(f"the learning-rate schedule covers {total} batches but {num_epochs} epochs of "
                            f"{num_batches} batches need {needed}" +
                            (f"; resume with the number of epochs the checkpoint was made for ({made_for})"
                             if start_epoch else "; build the schedule for this many epochs"))


def _tqdm():
    """tqdm.auto's progress bar, imported only when a bar is wanted (it may import ipywidgets)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class _Trainer:
    """The pieces of one ``fit`` run and the steps of its epochs (read ``fit`` first)."""

    def __init__(self, net, model, optimizer, scheduler, loss, device, use_amp, cl, check_every, max_steps, stop,
                 callbacks, num_batches, history, progress, num_epochs, grad_clip=None):
        self.net, self.model, self.optimizer, self.scheduler, self.loss = net, model, optimizer, scheduler, loss
        self.grad_clip = grad_clip
        self.device, self.use_amp, self.cl, self.check_every = device, use_amp, cl, check_every
        self.max_steps, self.stop, self.callbacks, self.num_batches = max_steps, stop, callbacks, num_batches
        self.history, self.num_epochs = history, num_epochs
        self.bar = _tqdm() if progress else None
        self.global_step = 0
        self.last_shape = None  # the shape of the last batch (an out-of-memory message names it)

    def snapshot(self, epoch):
        """The state at an epoch boundary: what a checkpoint holds and what a NaN loss goes back to."""
        return {"format": CHECKPOINT_FORMAT, "epoch": epoch,
                "model": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "scheduler": copy.deepcopy(self.scheduler.state_dict()) if self.scheduler is not None else None,
                "rng": rng_state(), "history": self.history.full_epochs().to_dict(),
                "meta": copy.deepcopy(self.history.meta)}

    def restore(self, state):
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])

    def train_epoch(self, train_iter, epoch):
        """One pass over the training batches; returns its ``EpochSums`` or raises ``EndOfRun`` carrying them."""
        self.net.train()
        sums = EpochSums.start(self.device)
        bar = self.bar(total=self.num_batches, desc=f"epoch {epoch + 1}/{self.num_epochs}", leave=False, unit="batch",
                       dynamic_ncols=True) if self.bar else None
        try:
            for X, y in train_iter:
                if self.stop is not None and self.stop.is_set():
                    raise StopRequested(f"stopped by request in {_where(epoch, sums.batches, self.num_batches)}; "
                                        "the model keeps its weights")
                self.train_step(X, y, sums)
                if sums.batches % self.check_every == 0:
                    self.check_loss(sums, epoch, bar)
                if bar is not None:
                    bar.update(1)
                self.callbacks("on_batch_end", Step(epoch + 1, sums.batches, self.num_batches, self.global_step,
                                                    sums.images, self.last_loss, sums))
                if self.max_steps is not None and self.global_step >= self.max_steps:
                    self.check_loss(sums, epoch, None)
                    raise MaxStepsReached(f"reached max_steps={self.max_steps} in "
                                          f"{_where(epoch, sums.batches, self.num_batches)}")
            self.check_loss(sums, epoch, None)
        except KeyboardInterrupt:
            end = Interrupted(f"interrupted (KeyboardInterrupt) in {_where(epoch, sums.batches, self.num_batches)}; "
                              "the model keeps its weights")
        except EndOfRun as stop_here:
            end = stop_here
        except Exception as error:  # out of memory: advice; an input too small for the net: one sentence
            if not is_out_of_memory(error):
                _explain_input_error(self.net, error, self.last_shape)
                raise
            end = _out_of_memory(epoch, sums.batches, self.num_batches, self.last_shape, self.device)
        else:
            end = None
        finally:
            if bar is not None:
                bar.close()
        runtime.sync(self.device)
        sums.train_seconds = time.perf_counter() - sums.started
        if end is not None:
            end.sums = sums
            raise end
        return sums

    def train_step(self, X, y, sums):
        """Forward, loss, backward, step (and the schedule), adding the batch to the epoch's sums."""
        self.last_shape = tuple(X.shape)
        X, y = _to_device(X, y, self.device, self.cl)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.use_amp):
            y_hat = self.model(X)
            loss = self.loss(y_hat, y)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        with torch.no_grad():
            self.last_loss = loss.detach()
            sums.loss_sum += self.last_loss.double() * y.shape[0]
            sums.correct += (y_hat.argmax(dim=1) == y).sum()
        sums.images += y.shape[0]
        sums.batches += 1
        self.global_step += 1

    def check_loss(self, sums, epoch, bar):
        """Raise ``LossNotFinite`` if the loss is NaN or infinite (reading it waits for the GPU)."""
        value = sums.loss_sum.item()
        if not math.isfinite(value):
            restored = f"the weights after epoch {epoch}" if epoch else "the starting weights"
            raise LossNotFinite(f"the training loss became {value} in epoch {epoch + 1} (the learning rate is "
                                f"probably too high); training stopped and {restored} were restored")
        if bar is not None and sums.images:
            bar.set_postfix(loss=f"{value / sums.images:.3f}", refresh=False)

    def record(self, epoch, sums, test_iter, partial=False, tested=True):
        """The epoch's record for the history, with the test pass if ``tested`` (not after a stop or an interrupt)."""
        test_acc = None
        if test_iter is not None and tested:
            test_acc = evaluate(self.net, test_iter, self.device, amp=self.use_amp, channels_last=self.cl)
        record = {"epoch": epoch + 1, "loss": sums.loss_sum.item() / sums.images, "train_acc": sums.correct.item() / sums.images,
                  "test_acc": test_acc, "seconds": time.perf_counter() - sums.started,
                  "train_seconds": sums.train_seconds, "images_per_s": sums.images / max(sums.train_seconds, 1e-9),
                  "images": sums.images, "lr": self.optimizer.param_groups[0]["lr"]}
        if partial:
            record.update(partial=True, batches=sums.batches, num_batches=self.num_batches)
        return record


def fit(net, train_iter, test_iter=None, *, num_epochs, lr=None, optimizer=None, scheduler=None,
        loss=None, device=None, callbacks=(), checkpoint=None, resume=False, stop=None, progress=True,
        amp="auto", channels_last="auto", compile=False, max_steps=None, check_every=None, meta=None,
        verbose=True, threads=None, grad_clip=None):
    """Train ``net`` (lesson 05; d2l's ``train_ch6`` made fast and safe) and return a ``History``.

    net, train_iter, test_iter: the model and iterables of ``(X, y)`` (``data.Batches``; a
        ``set_epoch`` method, if there, is called before each epoch so the order is reproducible).
        ``test_iter=None`` skips evaluation.
    num_epochs: epochs to reach (a resumed run counts the epochs already done).
    lr or optimizer: a learning rate gives plain SGD as in the book; or pass an optimizer.
    scheduler: an LR scheduler stepped after every batch (e.g. OneCycleLR), or None.
    loss: the loss module (default ``nn.CrossEntropyLoss()``).
    device: 'auto' | 'cpu' | 'cuda' | 'mps' | a torch.device; None keeps the net where it is.
    callbacks: ``Callback`` objects or functions ``fn(record, history)`` called after each epoch.
    checkpoint, resume: save every finished epoch to this path; with ``resume=True`` load it
        first (if it exists) and continue from the epoch after the last one saved.
    stop: a ``threading.Event``; when set, training ends after the current batch.
    progress: show a tqdm progress bar (``tqdm.auto``).
    amp, channels_last: 'auto' follows ``runtime.uses_amp`` / ``runtime.uses_channels_last``.
    compile: wrap the net in ``torch.compile`` for the training steps (CUDA; slow to start).
    max_steps: stop after this many training batches (benchmarks, tests).
    check_every: look for a NaN/inf loss every so many batches (default 1 on CPU, 50 on GPU,
        where each check waits for the GPU).
    meta: a dict stored in the history and the checkpoint (e.g. the preset).
    threads: torch CPU threads for a run on the CPU (default: what the CPU quota allows).
    grad_clip: after each backward pass, scale the gradients down so that their total norm is at most this
        (d2l's ``gradient_clip_val``); None leaves them as they are.
    """
    checks.whole_number("num_epochs", num_epochs, 1)
    checks.whole_number("max_steps", max_steps, 1, none=True)
    if grad_clip is not None:
        checks.number("grad_clip", grad_clip, 0, low_open=True, example=1.0)
    if (lr is None) == (optimizer is None):
        raise checks.refuse("give fit either lr (plain SGD, as in the book) or an optimizer, not both and not neither")
    if lr is not None:
        checks.learning_rate(lr)
    if resume and checkpoint is None:
        raise checks.refuse("resume=True needs checkpoint=PATH, the file to resume from")
    device = _resolve_device(net, device)
    use_amp, cl = runtime.uses_amp(amp, device), runtime.uses_channels_last(channels_last, device)
    with runtime.cpu_threads(threads) if device.type == "cpu" else contextlib.nullcontext():
        net.to(device, memory_format=torch.channels_last) if cl else net.to(device)
        optimizer = optimizer if optimizer is not None else torch.optim.SGD(net.parameters(), lr=lr)
        history = History(meta={"device": runtime.describe_device(device), **(meta or {}),
                                "amp": use_amp, "channels_last": cl, "compile": bool(compile)})
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        run = _Trainer(net, torch.compile(net) if compile else net, optimizer, scheduler,
                       loss if loss is not None else nn.CrossEntropyLoss(), device, use_amp, cl,
                       check_every or (1 if device.type == "cpu" else 50), max_steps, stop,
                       _Callbacks(callbacks), _num_batches(train_iter), history, progress, num_epochs, grad_clip)
        start_epoch = _resume(run, checkpoint, verbose) if resume else 0
        _check_schedule_length(scheduler, num_epochs, run.num_batches, start_epoch)
        run.callbacks("on_train_begin", {"num_epochs": num_epochs, "start_epoch": start_epoch,
                                         "num_batches": run.num_batches, "device": device})
        boundary = run.snapshot(start_epoch)  # the last epoch boundary: what a checkpoint holds
        epoch = start_epoch
        try:
            for epoch in range(start_epoch, num_epochs):
                if stop is not None and stop.is_set():
                    raise StopRequested(f"stopped by request in {_where(epoch)}; the model keeps its weights")
                if hasattr(train_iter, "set_epoch"):
                    train_iter.set_epoch(epoch)
                try:
                    sums = run.train_epoch(train_iter, epoch)
                except EndOfRun as end:
                    if end.keeps_epoch and end.sums.images:
                        _end_epoch(run, epoch, end.sums, test_iter, tested=isinstance(end, MaxStepsReached))
                    raise
                history.epochs.append(run.record(epoch, sums, test_iter))
                boundary = run.snapshot(epoch + 1)
                failed = _save(checkpoint, boundary, epoch)
                run.callbacks("on_epoch_end", history.last, history)
                if failed is not None:
                    raise failed
        except KeyboardInterrupt:  # raised by a callback, or during evaluation
            _finish(run, Interrupted(f"interrupted (KeyboardInterrupt) in {_where(epoch)}; the model keeps its "
                                     "weights"), boundary, checkpoint)
        except EndOfRun as end:
            _finish(run, end, boundary, checkpoint)
        except Exception as error:  # out of memory outside a training step (evaluation): advice, not a crash
            if not is_out_of_memory(error):
                raise
            del error
            _finish(run, _out_of_memory(epoch, None, None, None, device), boundary, checkpoint)
        if history.stopped and verbose:
            print(history.reason)
        run.callbacks("on_train_end", history)
    return history


def _end_epoch(run, epoch, sums, test_iter, tested):
    """An epoch cut short by ``EndOfRun``: its record and its callbacks, like any other epoch's
    (``tested``: after ``max_steps`` the test pass runs as after a whole epoch)."""
    partial = run.num_batches is None or sums.batches < run.num_batches
    record = run.record(epoch, sums, test_iter, partial=partial, tested=tested)
    run.history.epochs.append(record)
    run.callbacks("on_epoch_end", record, run.history)


def _save(checkpoint, state, epoch):
    """Save the checkpoint of a finished epoch; a ``CheckpointFailed`` to raise (after the callbacks) if it cannot."""
    if checkpoint is None:
        return None
    try:
        save_checkpoint(checkpoint, state)
    except CheckpointError as error:  # a full disk: stop, keep the net, the history and the old file
        return CheckpointFailed(f"{str(error).rstrip('.')}; training stopped after epoch {epoch + 1} and the model "
                                "keeps its weights")
    return None


def _finish(run, end, boundary, checkpoint):
    """Note how the run ended; go back to the last good weights after a bad loss, else keep the net as it is and
    (re)write the last epoch boundary so that resuming repeats nothing and skips nothing."""
    run.history.stopped, run.history.reason = end.stopped, end.reason
    if isinstance(end, OutOfMemory):
        run.optimizer.zero_grad(set_to_none=True)  # drop the gradients and give cached GPU memory back
        if run.device.type == "cuda":
            torch.cuda.empty_cache()
    if isinstance(end, LossNotFinite):
        run.restore(boundary)
    elif end.checkpoint and checkpoint is not None:
        try:
            save_checkpoint(checkpoint, boundary)
        except CheckpointError as error:
            run.history.reason += f"; {str(error).rstrip('.')}"


def _resume(run, checkpoint, verbose):
    """Load ``checkpoint`` into the run if it exists; returns the epoch to start from."""
    if not Path(checkpoint).is_file():
        if verbose:
            print(f"no checkpoint at {Path(checkpoint).name} yet; starting from epoch 1")
        return 0
    state = load_checkpoint(checkpoint)  # on the CPU: RNG states must stay CPU tensors
    try:
        run.restore(state)
    except (RuntimeError, KeyError, ValueError) as e:
        raise _mismatch(checkpoint, state, run.net, e) from None
    set_rng_state(state["rng"])
    saved = History.from_dict(state["history"])
    run.history.epochs, run.history.meta = saved.epochs, {**saved.meta, **run.history.meta}
    if verbose:
        print(f"resuming from {Path(checkpoint).name} after epoch {state['epoch']}")
    return state["epoch"]
