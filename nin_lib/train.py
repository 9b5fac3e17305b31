"""Training NiN (lesson 05): ``evaluate``, ``fit``, a ``History``, callbacks and checkpoints.

One loop serves CPU, CUDA and Apple MPS. Batches come from ``data.Batches`` (already on the
device, resized there); any iterable of ``(X, y)`` works too. On CUDA the loop uses bf16
autocast and channels_last memory by default (``torch.compile`` is optional, off by default).

What a run keeps, whatever happens:

* a finished run returns its ``History`` (per epoch: loss, train and test accuracy, seconds,
  images/s);
* a NaN or infinite loss stops the run, restores the weights of the last good epoch and says so
  in ``history.reason``;
* a ``stop`` event (the panel's Stop button) or Ctrl-C / a kernel interrupt ends the run after the
  current batch; the net keeps its weights and the history its epochs;
* with ``checkpoint=PATH`` every finished epoch is saved atomically (model, optimiser, scheduler,
  RNG states, history); on a stop the last finished epoch is (re)written, so
  ``fit(..., resume=True)`` continues exactly where the last full epoch ended: on a CPU with the
  same seed a resumed run gives the same numbers as an uninterrupted one;
* running out of memory (a batch or an image too big for the GPU) ends the run with advice in
  ``history.reason`` (a smaller batch size or image size) instead of a crash; the net keeps its weights;
* a checkpoint that cannot be written (a full disk) ends the run with a sentence saying so, and the
  previous checkpoint stays as it was (``CheckpointError`` from ``save_checkpoint``).
"""
import contextlib
import copy
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import torch
from torch import nn

from . import runtime

CHECKPOINT_FORMAT = "nin-lib-checkpoint-1"
_KEYS = ("epoch", "loss", "train_acc", "test_acc", "seconds", "train_seconds", "images_per_s", "lr")


# ---------------------------------------------------------------------------------------------
# History

class History:
    """Per-epoch results of ``fit`` (lesson 05): loss, train/test accuracy, seconds and images/s.

    ``history.epochs`` is a list of dicts with keys ``epoch`` (1-based), ``loss``, ``train_acc``,
    ``test_acc`` (None without a test set or for a partial epoch), ``seconds`` (training plus
    evaluation), ``train_seconds``, ``images_per_s`` (training images per training second),
    ``lr`` (at the end of the epoch) and ``partial`` (True for an epoch cut short by a stop).
    ``stopped`` is True when the run ended early by a stop, an interrupt or a bad loss, and
    ``reason`` says why in one sentence.
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
        """Write the history as JSON (the command line's ``history.json``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")  # atomic: a full disk never leaves half a file
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return path

    @classmethod
    def load_json(cls, path):
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self):
        """One line: epochs, last loss and accuracies, time."""
        if not self.epochs:
            text = "no epoch finished"
        else:
            e = self.epochs[-1]
            text = (f"{self.completed_epochs} epoch(s): loss {e['loss']:.3f}, "
                    f"train acc {e['train_acc']:.3f}, test acc {_fmt(self.final_test_acc)}, "
                    f"{self.total_seconds:.1f} s, {_mean_rate(self.epochs):,.0f} images/s")
        if self.stopped or self.reason:
            text += f" ({self.reason})"
        return text

    def __repr__(self):
        return f"History({self.summary()})"


def _fmt(x):
    return "n/a" if x is None else f"{x:.3f}"


def _mean_rate(epochs):
    images = sum(e.get("images", 0) for e in epochs)
    seconds = sum(e.get("train_seconds") or 0.0 for e in epochs)
    return images / seconds if seconds > 0 else 0.0


def format_epoch(record, num_epochs=None):
    """The line printed for one epoch, d2l style: 'epoch 3/10: loss 0.512, train acc 0.812, ...'."""
    of = f"/{num_epochs}" if num_epochs else ""
    part = " (partial)" if record.get("partial") else ""
    return (f"epoch {record['epoch']}{of}{part}: loss {record['loss']:.3f}, "
            f"train acc {record['train_acc']:.3f}, test acc {_fmt(record.get('test_acc'))}, "
            f"{record['seconds']:.1f} s, {record['images_per_s']:,.0f} images/s")


# ---------------------------------------------------------------------------------------------
# Devices, autocast, memory format

def _device_of(net):
    for p in net.parameters():
        return p.device
    return torch.device("cpu")


def _resolve_device(net, device):
    if device is None:
        return _device_of(net)
    return runtime.pick_device(device)


def _use_amp(amp, device):
    if amp == "auto":
        return device.type == "cuda"
    return bool(amp)


def _use_channels_last(channels_last, device):
    if channels_last == "auto":
        return device.type == "cuda"
    return bool(channels_last)


def autocast(device, enabled):
    """bf16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _to_device(X, y, device, channels_last):
    X = X.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if channels_last and X.dim() == 4 and not X.is_contiguous(memory_format=torch.channels_last):
        X = X.contiguous(memory_format=torch.channels_last)
    return X, y


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# ---------------------------------------------------------------------------------------------
# Evaluation

def evaluate(net, data_iter, device=None, *, loss=None, return_loss=False, amp="auto", channels_last="auto"):
    """Accuracy of ``net`` on ``data_iter`` (lesson 05; d2l's ``evaluate_accuracy_gpu``).

    Returns the accuracy as a float; with ``return_loss=True`` returns ``(accuracy, mean loss)``
    (``loss`` defaults to cross-entropy). The net is put in eval mode and back afterwards.
    """
    device = _resolve_device(net, device)
    use_amp, cl = _use_amp(amp, device), _use_channels_last(channels_last, device)
    loss = loss if loss is not None else nn.CrossEntropyLoss()
    was_training = net.training
    net.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    try:
        with torch.no_grad():
            for X, y in data_iter:
                X, y = _to_device(X, y, device, cl)
                with autocast(device, use_amp):
                    y_hat = net(X)
                correct += (y_hat.argmax(dim=1) == y).sum()
                if return_loss:
                    loss_sum += loss(y_hat.float(), y).double() * y.shape[0]
                count += y.shape[0]
    finally:
        net.train(was_training)
    if count == 0:
        raise ValueError("the evaluation data yielded no examples; give it at least one batch.")
    accuracy = correct.item() / count
    return (accuracy, loss_sum.item() / count) if return_loss else accuracy


def predict(net, data_iter, device=None, *, amp="auto", channels_last="auto"):
    """All labels and predictions over ``data_iter`` as CPU tensors ``(y, y_hat)`` (lesson 05's
    confusion matrix and misclassified images)."""
    device = _resolve_device(net, device)
    use_amp, cl = _use_amp(amp, device), _use_channels_last(channels_last, device)
    was_training = net.training
    net.eval()
    ys, preds = [], []
    try:
        with torch.no_grad():
            for X, y in data_iter:
                X, y = _to_device(X, y, device, cl)
                with autocast(device, use_amp):
                    preds.append(net(X).argmax(dim=1).cpu())
                ys.append(y.cpu())
    finally:
        net.train(was_training)
    return torch.cat(ys), torch.cat(preds)


def confusion_matrix(y, y_hat, num_classes=10):
    """counts[i, j] = how many examples of true class i were predicted as class j (lesson 05)."""
    y, y_hat = torch.as_tensor(y).long().flatten(), torch.as_tensor(y_hat).long().flatten()
    if y.shape != y_hat.shape:
        raise ValueError(f"labels {tuple(y.shape)} and predictions {tuple(y_hat.shape)} must have the same length.")
    index = y * num_classes + y_hat
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


# ---------------------------------------------------------------------------------------------
# Checkpoints

def rng_state():
    """The random-number states a resumed run needs: torch (CPU, CUDA), Python, NumPy."""
    state = {"torch": torch.get_rng_state(), "python": _python_state()}
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


def _python_state():
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": list(internal), "gauss": gauss}


def set_rng_state(state):
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
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
    """Write a checkpoint atomically: a temporary file in the same folder, then ``os.replace``.

    If writing fails (a full disk, no permission) the temporary file is removed, the previous
    checkpoint stays as it was, and ``CheckpointError`` says so in one sentence.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # a full disk: OSError from Python, RuntimeError from torch.save
        with contextlib.suppress(OSError):
            tmp.unlink()
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
        raise ValueError(f"checkpoint {str(path)!r} does not exist; train with checkpoint=that path first.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt or foreign file: one sentence, not a traceback
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: it is truncated, damaged or not a checkpoint "
                         f"({type(e).__name__}); delete it or point to a checkpoint written by nin_lib.") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} was not written by nin_lib's fit; delete it or use another path.")
    return state


def _state(net, optimizer, scheduler, history, epoch, rng, meta):
    return {"format": CHECKPOINT_FORMAT, "epoch": epoch,
            "model": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "scheduler": copy.deepcopy(scheduler.state_dict()) if scheduler is not None else None,
            "rng": rng, "history": history.full_epochs().to_dict(), "meta": copy.deepcopy(meta)}


def _restore(net, optimizer, scheduler, state):
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])


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
        """Called after every finished epoch with its record (a dict) and the history so far."""

    def on_train_end(self, history):
        """Called once at the end, also after a stop or an interrupt."""


class Step:
    """What ``on_batch_end`` sees: epoch (1-based), batch (1-based), num_batches, global step,
    images seen this epoch, and the batch loss (``step.loss`` reads it, which waits for the GPU)."""

    __slots__ = ("epoch", "batch", "num_batches", "global_step", "images", "_loss")

    def __init__(self, epoch, batch, num_batches, global_step, images, loss):
        self.epoch, self.batch, self.num_batches = epoch, batch, num_batches
        self.global_step, self.images, self._loss = global_step, images, loss

    @property
    def loss(self):
        return float(self._loss)

    def __repr__(self):
        return f"Step(epoch={self.epoch}, batch={self.batch}/{self.num_batches})"


class PrintEpochs(Callback):
    """Print one line per epoch (what the command line shows)."""

    def __init__(self, num_epochs=None, file=None):
        self.num_epochs, self.file = num_epochs, file

    def on_epoch_end(self, record, history):
        print(format_epoch(record, self.num_epochs), file=self.file, flush=True)


def _call(callbacks, name, *args):
    for cb in callbacks:
        if callable(cb) and not isinstance(cb, Callback) and not hasattr(cb, name):
            if name == "on_epoch_end":
                cb(*args)
            continue
        method = getattr(cb, name, None)
        if method is not None:
            method(*args)


# ---------------------------------------------------------------------------------------------
# The training loop

def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} {value!r} is not allowed; use a whole number >= 1.")


def check_lr(lr):
    """Raise ValueError unless ``lr`` is a finite number > 0."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate {lr!r} is not allowed; use a finite number > 0, such as 0.1.")


def _num_batches(it):
    try:
        return len(it)
    except TypeError:
        return None


def fit(net, train_iter, test_iter=None, *, num_epochs, lr=None, optimizer=None, scheduler=None,
        loss=None, device=None, callbacks=(), checkpoint=None, resume=False, stop=None, progress=True,
        amp="auto", channels_last="auto", compile=False, max_steps=None, check_every=None, meta=None,
        verbose=True):
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
    amp, channels_last: 'auto' turns bf16 autocast and channels_last on for CUDA only.
    compile: wrap the net in ``torch.compile`` for the training steps (CUDA; slow to start).
    max_steps: stop after this many training batches (benchmarks, tests).
    check_every: look for a NaN/inf loss every so many batches (default 1 on CPU, 50 on GPU,
        where each check waits for the GPU).
    meta: a dict stored in the history and the checkpoint (e.g. the preset).
    """
    _check_positive_int("num_epochs", num_epochs)
    _check_positive_int("max_steps", max_steps, allow_none=True)
    if (lr is None) == (optimizer is None):
        raise ValueError("give fit either lr (plain SGD, as in the book) or an optimizer, not both and not neither.")
    if lr is not None:
        check_lr(lr)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH, the file to resume from.")
    device = _resolve_device(net, device)
    use_amp = _use_amp(amp, device)
    cl = _use_channels_last(channels_last, device)
    net.to(device, memory_format=torch.channels_last) if cl else net.to(device)
    if optimizer is None:
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = loss if loss is not None else nn.CrossEntropyLoss()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = torch.compile(net) if compile else net
    check_every = check_every or (1 if device.type == "cpu" else 50)
    callbacks = list(callbacks or ())
    meta = dict(meta or {})
    meta.setdefault("device", runtime.describe_device(device))
    meta.update(amp=use_amp, channels_last=cl, compile=bool(compile))

    history, start_epoch = History(meta=meta), 0
    if resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint)  # on the CPU: RNG states must stay CPU tensors
        try:
            _restore(net, optimizer, scheduler, state)
        except (RuntimeError, KeyError, ValueError) as e:
            raise _mismatch(checkpoint, state, net, e) from None
        set_rng_state(state["rng"])
        history = History.from_dict(state["history"])
        history.meta.update(meta)
        start_epoch = state["epoch"]
        if verbose:
            print(f"resuming from {Path(checkpoint).name} after epoch {start_epoch}")
    elif resume and verbose:
        print(f"no checkpoint at {Path(checkpoint).name} yet; starting from epoch 1")
    history.stopped, history.reason = False, None

    num_batches = _num_batches(train_iter)
    _check_schedule_length(scheduler, num_epochs, num_batches, start_epoch)
    _call(callbacks, "on_train_begin", {"num_epochs": num_epochs, "start_epoch": start_epoch,
                                        "num_batches": num_batches, "device": device})
    bar_cls = _tqdm() if progress else None
    run = _Loop(model, net, optimizer, scheduler, loss, device, use_amp, cl, check_every, max_steps, stop,
                callbacks, num_batches)
    boundary = None  # the state at the last epoch boundary: what a checkpoint holds
    end = None
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, num_epochs):
            boundary = _state(net, optimizer, scheduler, history, epoch, rng_state(), meta)
            if stop is not None and stop.is_set():
                end = "stop"
                history.stopped, history.reason = True, _stop_reason(end, epoch, 0, num_batches)
                break
            if hasattr(train_iter, "set_epoch"):
                train_iter.set_epoch(epoch)
            bar = bar_cls(total=num_batches, desc=f"epoch {epoch + 1}/{num_epochs}", leave=False,
                          unit="batch", dynamic_ncols=True) if bar_cls else None
            try:
                end, sums = run.epoch(train_iter, epoch, bar)
            finally:
                if bar is not None:
                    bar.close()
            loss_sum, correct, images, batch, train_seconds, start = sums
            if end == "nan":
                _restore(net, optimizer, scheduler, boundary)
                history.stopped = True
                history.reason = (f"the training loss became {loss_sum} in epoch {epoch + 1} (the learning rate "
                                  f"is probably too high); training stopped and "
                                  f"{'the weights after epoch ' + str(epoch) if epoch else 'the starting weights'} "
                                  f"were restored")
                break
            if end == "oom":
                _free_memory(optimizer, device)
            if images == 0:  # stopped before the first batch of this epoch
                history.stopped = end in ("stop", "interrupt", "oom")
                history.reason = _stop_reason(end, epoch, 0, num_batches, shape=run.last_shape, device=device)
                break
            test_acc = None
            if test_iter is not None and end in (None, "max_steps"):
                test_acc = evaluate(net, test_iter, device, amp=use_amp, channels_last=cl)
            record = {"epoch": epoch + 1, "loss": loss_sum / images, "train_acc": correct / images,
                      "test_acc": test_acc, "seconds": time.perf_counter() - start,
                      "train_seconds": train_seconds, "images_per_s": images / max(train_seconds, 1e-9),
                      "images": images, "lr": optimizer.param_groups[0]["lr"]}
            if end is not None:
                record["partial"] = num_batches is None or batch < num_batches
            history.epochs.append(record)
            if end is not None:
                history.stopped = end in ("stop", "interrupt", "oom")
                history.reason = _stop_reason(end, epoch, batch, num_batches, max_steps, shape=run.last_shape,
                                              device=device)
                if end == "max_steps":
                    _call(callbacks, "on_epoch_end", record, history)
                break
            boundary = _state(net, optimizer, scheduler, history, epoch + 1, rng_state(), meta)
            if checkpoint is not None:
                try:
                    save_checkpoint(checkpoint, boundary)
                except CheckpointError as error:  # a full disk: stop, keep the net, the history and the old file
                    end = "disk"
                    history.stopped = True
                    history.reason = (f"{str(error).rstrip('.')}; training stopped after epoch {epoch + 1} "
                                      "and the model keeps its weights")
                    _call(callbacks, "on_epoch_end", record, history)
                    break
            _call(callbacks, "on_epoch_end", record, history)
    except KeyboardInterrupt:  # raised by a callback between batches, or during evaluation
        end = "interrupt"
        history.stopped, history.reason = True, _stop_reason(end, epoch, None, num_batches)
    except Exception as error:  # out of memory outside a training step (evaluation): advice, not a crash
        if not is_out_of_memory(error):
            raise
        end = "oom"
        del error
        _free_memory(optimizer, device)
        history.stopped = True
        history.reason = _stop_reason(end, epoch, None, num_batches, device=device)
    if history.stopped and end in ("stop", "interrupt", "oom") and checkpoint is not None and boundary is not None:
        # the last epoch boundary, exactly: resuming from it repeats nothing and skips nothing
        try:
            save_checkpoint(checkpoint, boundary)
        except CheckpointError as error:
            history.reason += f"; {str(error).rstrip('.')}"
    if history.stopped and verbose:
        print(history.reason)
    _call(callbacks, "on_train_end", history)
    return history


class _Loop:
    """One training epoch, batch by batch (the inside of ``fit``)."""

    def __init__(self, model, net, optimizer, scheduler, loss, device, use_amp, cl, check_every, max_steps,
                 stop, callbacks, num_batches):
        self.model, self.net, self.optimizer, self.scheduler, self.loss = model, net, optimizer, scheduler, loss
        self.device, self.use_amp, self.cl, self.check_every = device, use_amp, cl, check_every
        self.max_steps, self.stop, self.callbacks, self.num_batches = max_steps, stop, callbacks, num_batches
        self.global_step = 0
        self.last_shape = None  # the shape of the last batch (an out-of-memory message names it)

    def epoch(self, train_iter, epoch, bar):
        """Run one epoch; returns (why it ended early or None, (loss sum, correct, images, batches,
        training seconds, start time))."""
        device, optimizer, scheduler = self.device, self.optimizer, self.scheduler
        self.net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        images, batch, end = 0, 0, None
        start = time.perf_counter()
        try:
            for X, y in train_iter:
                if self.stop is not None and self.stop.is_set():
                    end = "stop"
                    break
                self.last_shape = tuple(X.shape)
                X, y = _to_device(X, y, device, self.cl)
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, self.use_amp):
                    y_hat = self.model(X)
                    l = self.loss(y_hat, y)
                l.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                with torch.no_grad():
                    l = l.detach()
                    loss_sum += l.double() * y.shape[0]
                    correct += (y_hat.argmax(dim=1) == y).sum()
                images += y.shape[0]
                batch += 1
                self.global_step += 1
                if batch % self.check_every == 0:
                    value = loss_sum.item()
                    if not math.isfinite(value):
                        end = "nan"
                        break
                    if bar is not None:
                        bar.set_postfix(loss=f"{value / images:.3f}", refresh=False)
                if bar is not None:
                    bar.update(1)
                _call(self.callbacks, "on_batch_end",
                      Step(epoch + 1, batch, self.num_batches, self.global_step, images, l))
                if self.max_steps is not None and self.global_step >= self.max_steps:
                    end = "max_steps"
                    break
        except KeyboardInterrupt:
            end = "interrupt"
        except Exception as error:  # out of memory: advice; an input too small for the net: one sentence
            if not is_out_of_memory(error):
                _explain_input_error(self.net, error, self.last_shape)
                raise
            end = "oom"
        _sync(device)
        train_seconds = time.perf_counter() - start
        value = loss_sum.item()
        if end in (None, "max_steps") and images and not math.isfinite(value):
            end = "nan"
        return end, (value, correct.item(), images, batch, train_seconds, start)


def _check_schedule_length(scheduler, num_epochs, num_batches, start_epoch):
    """A schedule with a fixed length (one-cycle) must cover every batch of the run."""
    total = getattr(scheduler, "total_steps", None)
    if total is None or num_batches is None:
        return
    needed = num_epochs * num_batches
    if total < needed:
        made_for = total // num_batches if num_batches else "?"
        raise ValueError(f"the learning-rate schedule covers {total} batches but {num_epochs} epochs of "
                         f"{num_batches} batches need {needed}" +
                         (f"; resume with the number of epochs the checkpoint was made for ({made_for})"
                          if start_epoch else "; build the schedule for this many epochs") + ".")


def _stop_reason(end, epoch, batch, num_batches, max_steps=None, shape=None, device=None):
    where = f"epoch {epoch + 1}" + (f", batch {batch}/{num_batches}" if batch and num_batches else "")
    if end == "oom":  # ``batch`` batches finished; the next one ran out of memory
        if batch is not None and num_batches:
            where = f"epoch {epoch + 1}, batch {batch + 1}/{num_batches}"
        on = f" on {torch.device(device).type}" if device is not None else ""
        what = (f" (a batch of {shape[0]} images of {shape[-2]}×{shape[-1]} px)"
                if shape is not None and len(shape) == 4 else "")
        return (f"out of memory{on} in {where}{what}; use a smaller batch size or image size and train again; "
                "the model keeps its weights")
    if end == "stop":
        return f"stopped by request in {where}; the model keeps its weights"
    if end == "interrupt":
        return f"interrupted (KeyboardInterrupt) in {where}; the model keeps its weights"
    if end == "max_steps":
        return f"reached max_steps={max_steps} in {where}"
    return f"ended in {where}"


def is_out_of_memory(error):
    """True for an out-of-memory error of any device (CUDA, Apple MPS, the CPU allocator)."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, oom):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free_memory(optimizer, device):
    """After an out-of-memory error: drop the gradients and give cached GPU memory back."""
    optimizer.zero_grad(set_to_none=True)
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _explain_input_error(net, error, shape):
    """Turn PyTorch's error for an image too small for the net into shapes' one sentence (if that is the cause)."""
    if not isinstance(error, RuntimeError) or shape is None or len(shape) != 4:
        return
    from . import shapes
    try:
        shapes.check_input_size(net, tuple(shape[-2:]), in_channels=shape[1])
    except shapes.InputTooSmallError as too_small:
        raise too_small from None
    except Exception:  # a net that shapes cannot follow: keep PyTorch's own error
        return


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
    return ValueError(f"checkpoint {str(checkpoint)!r} holds {what}; resume with the settings it was made with "
                      "or use another path.")


def _tqdm():
    """tqdm.auto's progress bar, imported only when a bar is wanted (it may import ipywidgets)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def build_run(preset="quick", *, data=None, device=None, **overrides):
    """Net, optimiser, scheduler and batches for a named preset: see ``presets.build_run``."""
    from . import presets
    return presets.build_run(preset, data=data, device=device, **overrides)
