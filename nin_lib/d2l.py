"""The book's names on nin_lib (lesson 00): with ``from nin_lib import d2l`` the chapter's code runs as printed.

The d2l-zh chapter 网络中的网络 (NiN) takes three names from ``d2l.torch``: ``load_data_fashion_mnist``,
``train_ch6`` and ``try_gpu``. Here they keep the book's signatures and meaning but run on nin_lib:

* ``load_data_fashion_mnist`` returns two ``BookBatches``: the images stay uint8 tensors and every
  batch is scaled to [0, 1] and resized as one tensor (no PIL, no worker processes). They sit on
  the CPU until ``train_ch6`` moves them, once, to its device, where they stay.
* ``train_ch6`` is ``train.fit`` with the book's recipe (Xavier-uniform init, plain SGD,
  cross-entropy, test accuracy after every epoch), d2l's live plot and d2l's two closing lines.
  On CUDA, ``fit`` adds bf16 autocast and channels_last.

The English edition's section (d2l-en 1.0) uses d2l's object API instead: ``Classifier``, ``Trainer``,
``FashionMNIST``, ``init_cnn`` and the rest of ``d2l_en``, re-exported here, so that chapter runs as printed too.

How much runs: with ``NIN_FAST=1`` a run is cut to a few images and at most ``FAST_EPOCHS`` epochs;
on a CPU, a run that would take longer than ``CPU_BUDGET_S`` (estimated from one timed
forward+backward pass) is cut to a short check of about ``CPU_TARGET_S``, in batches whose training step
needs at most ``CPU_MEMORY`` bytes (a Binder pod has 2 GiB for everything). Either way one printed line
says so (``plan_run``, shared with d2l-en's ``Trainer.fit``); ``fit_ch6(..., shrink=False)`` runs exactly what
was asked.
"""
import torch

from . import book, checks, models, runtime, train, viz
# the run plan both editions share, and d2l-en's object API, under the names the books use
from .book import (CPU_BUDGET_S, CPU_EPOCHS, CPU_MEMORY, CPU_TARGET_S, FAST_EPOCHS, FAST_TEST, FAST_TRAIN,
                   SUBSET_SEED, BookBatches, RunPlan, check_input, estimate_seconds, plan_run, step_bytes)
from .d2l_en import (Classifier, DataModule, FashionMNIST, HyperParameters, Module, ProgressBoard, Trainer,
                     init_cnn)

__all__ = [  # d2l-zh's names, d2l-en's names, and the run plan they share
    "try_gpu", "load_data_fashion_mnist", "evaluate_accuracy_gpu", "train_ch6", "fit_ch6", "closing_lines", "BookPlot",
    "Classifier", "DataModule", "FashionMNIST", "HyperParameters", "Module", "ProgressBoard", "Trainer", "init_cnn",
    "CPU_BUDGET_S", "CPU_EPOCHS", "CPU_MEMORY", "CPU_TARGET_S", "FAST_EPOCHS", "FAST_TEST", "FAST_TRAIN", "SUBSET_SEED",
    "BookBatches", "RunPlan", "check_input", "estimate_seconds", "plan_run", "step_bytes"]


# ---------------------------------------------------------------------------------------------
# Device and data

def try_gpu(i=0):
    """d2l's ``try_gpu`` (lesson 00): GPU ``cuda:i`` if it exists, else the CPU."""
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f"cuda:{i}")
    return torch.device("cpu")


def load_data_fashion_mnist(batch_size, resize=None):
    """d2l's ``load_data_fashion_mnist`` on nin_lib's tensor pipeline (lesson 00): ``(train_iter, test_iter)``.

    Same meaning as the book's: 60,000 training and 10,000 test images scaled to [0, 1], resized to
    ``resize`` × ``resize`` if given, training batches reshuffled every epoch, test batches in order,
    the last batch smaller. The shuffling is seeded from torch's global generator, so
    ``torch.manual_seed`` makes it repeatable.
    """
    return book.book_batches(batch_size, resize)


def evaluate_accuracy_gpu(net, data_iter, device=None):
    """d2l's ``evaluate_accuracy_gpu`` (lesson 00): the accuracy of ``net`` on ``data_iter`` (``train.evaluate``)."""
    return train.evaluate(net, data_iter, device)


# ---------------------------------------------------------------------------------------------
# Training

class BookPlot(train.Callback):
    """Feeds the live curves as d2l's ``train_ch6`` does (lesson 00): the epoch's running training loss and
    accuracy five times an epoch (``Step.mean_loss``, ``Step.accuracy``), test accuracy after each epoch."""

    def __init__(self, curves):
        self.curves, self.num_batches = curves, None

    def on_train_begin(self, info):
        self.num_batches = info.get("num_batches")

    def on_batch_end(self, step):
        n = self.num_batches
        if n and (step.batch % max(n // 5, 1) == 0 or step.batch == n):
            self.curves.add(step.epoch - 1 + step.batch / n, {"train loss": step.mean_loss, "train acc": step.accuracy})
            self.curves.draw()

    def on_epoch_end(self, record, history):
        if not self.num_batches:  # an iterable without len(): one point per epoch
            self.curves.add(record["epoch"], {"train loss": record["loss"], "train acc": record["train_acc"]})
        self.curves.add(record["epoch"], {"test acc": record.get("test_acc")})
        self.curves.draw(force=True)

    def on_train_end(self, history):
        self.curves.draw(force=True)


def closing_lines(history, device):
    """d2l's two closing lines (lesson 00): 'loss …, train acc …, test acc …' and '… examples/sec on …'.

    examples/sec = training images / wall-clock seconds of the training passes, making the
    batches included (the book's timer leaves the data loading out); evaluation is not counted.
    """
    last = history.last
    if last is None:
        return ["no epoch finished, so there is nothing to report"]
    test_acc = history.final_test_acc
    return [f"loss {last['loss']:.3f}, train acc {last['train_acc']:.3f}, "
            f"test acc {'n/a' if test_acc is None else format(test_acc, '.3f')}",
            f"{history.images_per_s:.1f} examples/sec on {device}"]


def fit_ch6(net, train_iter, test_iter, num_epochs, lr, device, *, shrink=True, curves=None, max_steps=None,
            file=None):
    """``train_ch6`` that also returns ``fit``'s ``History`` (lesson 00).

    shrink: let NIN_FAST=1 and a slow CPU cut the run (``plan_run``); False runs exactly what was asked.
    curves: a ``viz.LiveCurves`` to draw into (default: a new one, updated in place in a notebook).
    max_steps: stop after this many training batches (benchmarks). file: where the lines go (stdout).
    """
    checks.whole_number("num_epochs", num_epochs, 1)
    checks.learning_rate(lr)
    device = runtime.pick_device(device)
    if isinstance(train_iter, BookBatches):
        check_input(net, train_iter.image_shape)
    models.init_xavier(net)
    print("training on", device, file=file)
    plan = book.prepare_run(net, train_iter, test_iter, num_epochs, device, shrink=shrink, file=file)
    if curves is None:
        curves = viz.LiveCurves(title=f"train_ch6: lr {lr}, {plan.num_epochs} epoch(s) on {device}",
                                xlim=(0, plan.num_epochs), min_interval=1.0)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    history = train.fit(net, plan.train_iter, plan.test_iter, num_epochs=plan.num_epochs, optimizer=optimizer,
                        loss=torch.nn.CrossEntropyLoss(), device=device, callbacks=[BookPlot(curves)], progress=False,
                        max_steps=max_steps)
    for line in closing_lines(history, device):
        print(line, file=file)
    return history


def train_ch6(net, train_iter, test_iter, num_epochs, lr, device):
    """d2l's ``train_ch6`` on nin_lib's trainer (lesson 00): Xavier init, plain SGD, cross-entropy, test
    accuracy after each epoch, a live plot and the book's two closing lines; returns None like the book
    (``fit_ch6`` returns the ``History``)."""
    fit_ch6(net, train_iter, test_iter, num_epochs, lr, device)
