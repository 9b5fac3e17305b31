"""The book's names on nin_lib (lesson 00): with ``from nin_lib import d2l`` the chapter's code runs as printed.

The d2l-zh chapter 网络中的网络 (NiN) takes ``load_data_fashion_mnist``, ``train_ch6`` and ``try_gpu`` from
``d2l.torch``; here they keep the book's signatures and meaning but run on nin_lib: ``BookBatches`` scaled and resized a
whole batch at a time on the training device, and ``train.fit`` with the book's recipe, live plot and closing lines.
The English edition's section (d2l-en 1.0) uses d2l's object API instead: ``Classifier``, ``Trainer``, ``FashionMNIST``,
``init_cnn`` and the rest of ``d2l_en``, re-exported here, so that chapter runs as printed too.

How much runs (``book.plan_run``, both editions): with ``NIN_FAST=1`` a few images for at most ``FAST_EPOCHS`` epochs;
on a CPU, a run estimated (from its counted FLOPs, ``resources``) to take longer than ``CPU_BUDGET_S`` becomes a short
check of about ``CPU_TARGET_S``, in batches whose training step needs at most ``CPU_MEMORY`` bytes. One printed line
says so; ``fit_ch6(..., shrink=False)`` runs exactly what was asked.
"""
import torch

from . import book, checks, models, runtime, train, viz
# the book's data and run plan both editions share, and d2l-en's object API, under the names the books use
from .book import (CPU_EPOCHS, CPU_MEMORY, CPU_TARGET_S, FAST_EPOCHS, FAST_TEST, FAST_TRAIN, SUBSET_SEED,
                   BookBatches, estimate_seconds, load_data_fashion_mnist, plan_run, step_bytes)
from .d2l_en import (Classifier, DataModule, FashionMNIST, HyperParameters, Module, ProgressBoard, Trainer,
                     init_cnn)


def try_gpu(i=0):
    """d2l's ``try_gpu`` (lesson 00): GPU ``cuda:i`` if it exists, else the CPU."""
    return torch.device(f"cuda:{i}" if torch.cuda.device_count() >= i + 1 else "cpu")


class BookPlot(train.Callback):
    """Feeds the live curves as d2l's ``train_ch6`` does (lesson 00): the epoch's running training loss and
    accuracy five times an epoch, test accuracy after each epoch."""

    def __init__(self, curves):
        self.curves = curves

    def on_batch_end(self, run):
        n = run.num_batches
        if n and (run.batch % max(n // 5, 1) == 0 or run.batch == n):
            self.curves.add(run.epoch + run.batch / n, {"train loss": run.mean_loss, "train acc": run.accuracy})
            self.curves.draw()

    def on_epoch_end(self, run):
        record = run.record
        if not run.num_batches:  # an iterable without len(): one point per epoch
            self.curves.add(record["epoch"], {"train loss": record["loss"], "train acc": record["train_acc"]})
        self.curves.add(record["epoch"], {"test acc": record.get("test_acc")})
        self.curves.draw(force=True)

    def on_train_end(self, run):
        self.curves.draw(force=True)


def closing_lines(history, device):
    """d2l's two closing lines (lesson 00): 'loss …, train acc …, test acc …' and '… examples/sec on …': training
    images / seconds of the training passes, making the batches included (the book's timer leaves that out)."""
    last = history.last
    if last is None:
        return ["no epoch finished, so there is nothing to report"]
    test_acc = history.final_test_acc
    return [f"loss {last['loss']:.3f}, train acc {last['train_acc']:.3f}, "
            f"test acc {'n/a' if test_acc is None else format(test_acc, '.3f')}",
            f"{history.images_per_s:.1f} examples/sec on {device}"]


def fit_ch6(net, train_iter, test_iter, num_epochs, lr, device, *, shrink=True, curves=None, max_steps=None,
            file=None):
    """``train_ch6`` that also returns ``fit``'s ``History`` (lesson 00). ``shrink=False``: no cut (``plan_run``);
    ``curves``: a ``viz.LiveCurves`` to draw into (default: a new one); ``max_steps``: stop after that many batches
    (benchmarks); ``file``: where the lines go (stdout)."""
    checks.whole_number("num_epochs", num_epochs, 1)
    checks.learning_rate(lr)
    device = runtime.pick_device(device)
    plan = book.prepare_run(net, train_iter, test_iter, num_epochs, device, shrink=shrink, file=file,
                            say=f"training on {device}")
    models.init_xavier(net)
    if curves is None:
        curves = viz.LiveCurves(title=f"train_ch6: lr {lr}, {plan.num_epochs} epoch(s) on {device}",
                                xlim=(0, plan.num_epochs), min_interval=1.0)
    history = book.fit(net, plan, device, torch.optim.SGD(net.parameters(), lr=lr), torch.nn.CrossEntropyLoss(),
                       [BookPlot(curves)] + ([train.MaxSteps(max_steps)] if max_steps else []))
    for line in closing_lines(history, device):
        print(line, file=file)
    return history


def train_ch6(net, train_iter, test_iter, num_epochs, lr, device):
    """d2l's ``train_ch6`` on nin_lib's trainer (lesson 00): Xavier init, plain SGD, cross-entropy, test
    accuracy after each epoch, a live plot and the book's two closing lines; returns None like the book
    (``fit_ch6`` returns the ``History``)."""
    fit_ch6(net, train_iter, test_iter, num_epochs, lr, device)
