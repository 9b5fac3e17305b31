"""The book's batches and how much of its run happens here (lesson 00): all, a fast-mode cut or a CPU-sized check."""
from collections import namedtuple

import torch

from . import data, resources, runtime, shapes, train
from .resources import estimate_seconds, step_bytes  # step_bytes: one of the names d2l gives the book

FAST_EPOCHS = 2              # NIN_FAST=1: at most this many epochs,
FAST_TRAIN = FAST_TEST = 16  # on this many training and test images
CPU_BUDGET_S = 90    # on a CPU, a run estimated to take longer than this (seconds) is cut
CPU_TARGET_S = 15    # to a check estimated to take about this long,
CPU_EPOCHS = 2       # with at most this many epochs,
CPU_MEMORY = resources.GiB // 2  # in batches whose training step needs at most this much memory
SUBSET_SEED = 0      # which images a cut run keeps

RunPlan = namedtuple("RunPlan", "train_iter test_iter num_epochs note", defaults=[None])  # note: what was cut


class BookBatches(data.Batches):
    """The book's Fashion-MNIST batches (lesson 00): ``data.Batches`` whose ``to(device)`` moves the images once;
    iterating gives the book's ``(X, y)``, X float32 in [0, 1] of shape (batch, 1, side, side)."""

    def to(self, device):
        """Keep the images on ``device`` from now on (as ``nn.Module.to``, it changes this object and returns it)."""
        self.device = torch.device(device)
        self.images, self.labels = self.images.to(self.device), self.labels.to(self.device)
        return self

    def subset(self, size, seed=SUBSET_SEED, batch_size=None):
        """A copy holding ``size`` examples (``data.subset_indices``) in batches of ``batch_size`` (default: ours)."""
        size = min(size, self.num_examples)
        index = data.subset_indices(self.num_examples, size, seed).to(self.device)
        return BookBatches(self.images[index], self.labels[index], min(batch_size or self.batch_size, size),
                           shuffle=self.shuffle, seed=self.seed, resize=self.resize, device=self.device,
                           drop_last=self.drop_last, channels_last=self.channels_last, flip=self.flip,
                           dtype=self.dtype)

    @property
    def image_shape(self):
        """The shape of one image in a batch: (1, side, side)."""
        side = self.resize or self.images.shape[-1]
        return (1, side, side)

    def __repr__(self):
        return (f"BookBatches({self.num_examples:,} images of {'×'.join(map(str, self.image_shape))}, batch_size "
                f"{self.batch_size}, {'shuffled each pass' if self.shuffle else 'in order'}, on {self.device})")


def load_data_fashion_mnist(batch_size, resize=None, root=None):
    """d2l's ``load_data_fashion_mnist`` (lesson 00): all training and test images as ``BookBatches``, resized to
    ``resize`` × ``resize`` if given; the training order is seeded from torch's generator (``torch.manual_seed``)."""
    ds = data.load_fashion_mnist(root)
    seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    return (BookBatches(ds.train_images, ds.train_labels, batch_size, shuffle=True, seed=seed, resize=resize),
            BookBatches(ds.test_images, ds.test_labels, batch_size, shuffle=False, resize=resize))


def plan_run(net, train_iter, test_iter, num_epochs, device, *, shrink=True, fast=None, seconds_per_image=None):
    """How much of a book run to do here (lesson 00); only ``BookBatches`` are cut (``seconds_per_image``: tests)."""
    ours = isinstance(train_iter, BookBatches) and (test_iter is None or isinstance(test_iter, BookBatches))
    if shrink and (runtime.fast_mode() if fast is None else fast):
        epochs = min(num_epochs, FAST_EPOCHS)
        if not ours:
            return RunPlan(train_iter, test_iter, epochs,
                           f"NIN_FAST=1: {epochs} of {num_epochs} epochs (unset NIN_FAST for the full run)")
        return _cut(train_iter, test_iter, FAST_TRAIN, FAST_TEST, num_epochs, epochs, "NIN_FAST=1: a quick run on",
                    after=" (unset NIN_FAST for the book's full run)")
    if shrink and device.type == "cpu" and ours:
        shape = train_iter.image_shape
        t = seconds_per_image if seconds_per_image is not None else resources.seconds_per_image(net, shape)
        if t is not None:  # None: a net whose FLOPs shapes cannot count runs as asked
            return _cpu_plan(net, train_iter, test_iter, num_epochs, t)
    return RunPlan(train_iter, test_iter, num_epochs)


def _cut(train_iter, test_iter, train_size, test_size, num_epochs, epochs, why, batch_size=None, after=""):
    small_train = train_iter.subset(train_size, batch_size=batch_size)
    small_test = test_iter.subset(test_size, batch_size=batch_size) if test_iter is not None else None
    of = lambda part, whole: f"{part.num_examples:,} of {whole.num_examples:,}"
    test_part = f" and {of(small_test, test_iter)} test" if test_iter is not None else ""
    batches = f" in batches of {small_train.batch_size}" if small_train.batch_size != train_iter.batch_size else ""
    return RunPlan(small_train, small_test, epochs, f"{why} {of(small_train, train_iter)} training{test_part} "
                                                    f"images{batches}, {epochs} of {num_epochs} epochs{after}")


def _cpu_plan(net, train_iter, test_iter, num_epochs, t):
    """The whole run if it is estimated to fit ``CPU_BUDGET_S`` and the memory, else a check of ``CPU_TARGET_S``."""
    shape, n_test = train_iter.image_shape, test_iter.num_examples if test_iter is not None else 0
    full = estimate_seconds(t, train_iter.num_examples, n_test, num_epochs)
    if full <= CPU_BUDGET_S:
        if net is not None:
            resources.check_memory(net, shape, train_iter.batch_size, "cpu")
        return RunPlan(train_iter, test_iter, num_epochs)
    epochs = min(num_epochs, CPU_EPOCHS)
    fits = CPU_TARGET_S / estimate_seconds(t, 1, 0.5 if n_test else 0, epochs)  # training images in that time
    memory = resources.largest_batch(net, shape, CPU_MEMORY) if net is not None else None
    most = fits // 4 if memory is None else min(fits // 4, memory)
    # the book's batch size, or the largest power of two that fits ``CPU_MEMORY`` and four times in that time
    batch_size = train_iter.batch_size if train_iter.batch_size <= most else 1 << int(max(most, 1)).bit_length() - 1
    train_size = min(train_iter.num_examples, max(batch_size, int(fits // batch_size) * batch_size))
    why = (f"cpu: training runs at about {1 / t:.1f} images/s at most (its counted FLOPs at "
           f"{resources.CPU_FLOPS / 1e9:.0f} GFLOP/s), so the full run ({train_iter.num_examples:,} images × "
           f"{num_epochs} epochs at {'×'.join(map(str, shape[1:]))}) would take at least {resources.duration(full)}; "
           "running a short check instead:")
    return _cut(train_iter, test_iter, train_size, max(train_size // 2, 1), num_epochs, epochs, why, batch_size)


def prepare_run(net, train_iter, test_iter, num_epochs, device, *, shrink=True, file=None, say=None):
    """Both editions' way to ``fit`` (lesson 00): ``BookBatches`` checked to fit ``net``, the line ``say`` and
    ``plan_run``'s note printed, the plan's ``BookBatches`` moved to ``device``; returns the plan."""
    if isinstance(train_iter, BookBatches):
        shapes.check_input(net, (1, *train_iter.image_shape))
    if say is not None:
        print(say, file=file)
    plan = plan_run(net, train_iter, test_iter, num_epochs, device, shrink=shrink)
    if plan.note:
        print(plan.note, file=file)
    move = lambda batches: batches.to(device) if isinstance(batches, BookBatches) else batches
    return plan._replace(train_iter=move(plan.train_iter), test_iter=move(plan.test_iter))


def fit(net, plan, device, optimizer, loss, callbacks):
    """``train.fit`` of a prepared run with the edition's ``callbacks`` (lesson 00); no bar, but the sentence of why
    a run ended early."""
    return train.fit(net, plan.train_iter, plan.test_iter, num_epochs=plan.num_epochs, optimizer=optimizer, loss=loss,
                     device=device, callbacks=[*callbacks, train.ProgressBar(False, say_why=True)])
