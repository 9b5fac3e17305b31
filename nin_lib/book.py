"""The book's data and how much of the book's run happens here (lesson 00), shared by both editions' names in ``d2l``.

``BookBatches`` are what the book's ``load_data_fashion_mnist`` (d2l-zh) and ``FashionMNIST`` (d2l-en) serve: uint8
images resized a whole batch at a time, moved once to the training device, where they stay. ``plan_run`` decides how
much of a run to do here: all of it; with ``NIN_FAST=1`` a few images for at most ``FAST_EPOCHS`` epochs; on a CPU, a
run that would take longer than ``CPU_BUDGET_S`` (estimated from one timed forward+backward pass) is cut to a short
check of about ``CPU_TARGET_S``, in batches whose training step needs at most ``CPU_MEMORY`` bytes (a Binder pod has
2 GiB for everything). ``prepare_run`` prints the plan's one line and moves the batches: the path d2l-zh's
``train_ch6`` and d2l-en's ``Trainer.fit`` share on their way to ``train.fit``.
"""
import math
from dataclasses import dataclass

import torch

from . import checks, data, presets, runtime, shapes

FAST_EPOCHS = 2      # NIN_FAST=1: at most this many epochs,
FAST_TRAIN = 16      # on this many training images
FAST_TEST = 16       # and this many test images
CPU_BUDGET_S = 90    # on a CPU, a run estimated to take longer than this (seconds) is cut
CPU_TARGET_S = 15    # to a check estimated to take about this long,
CPU_EPOCHS = 2       # with at most this many epochs,
CPU_MEMORY = 512 * 2**20  # in batches whose training step needs at most this much memory
SUBSET_SEED = 0      # which images a cut run keeps


# ---------------------------------------------------------------------------------------------
# The book's batches

class BookBatches(data.Batches):
    """The book's Fashion-MNIST batches (lesson 00): ``data.Batches`` that can move to a device.

    Iterating gives the book's ``(X, y)``: X float32 in [0, 1] of shape (batch, 1, side, side), y int64;
    the training set is reshuffled every pass, the test set comes in order. ``to(device)`` moves the
    stored uint8 images once; from then on every batch is made on that device.
    """

    def to(self, device):
        """Keep the images on ``device`` from now on (as ``nn.Module.to``, it changes this object and returns it)."""
        device = torch.device(device)
        self.images = self.images.to(device)
        self.labels = self.labels.to(device)
        self.device = device
        return self

    def subset(self, size, seed=SUBSET_SEED, batch_size=None):
        """A copy holding ``size`` examples drawn at random with ``seed``, kept in their original order
        (in batches of ``batch_size``, default: this one's)."""
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
        order = "shuffled each pass" if self.shuffle else "in order"
        return (f"BookBatches({self.num_examples:,} images of {'×'.join(map(str, self.image_shape))}, "
                f"batch_size {self.batch_size}, {order}, on {self.device})")


def book_batches(batch_size, resize=None, root=None):
    """The 60,000 training and 10,000 test images as two ``BookBatches`` (lesson 00; both editions' loaders).

    Training batches are reshuffled every pass with a seed drawn from torch's global generator (so
    ``torch.manual_seed`` makes the order repeatable), test batches come in order; ``root``: where the files
    are (default: ``NIN_DATA_DIR`` or the cache folder).
    """
    ds = data.load_fashion_mnist(root)
    seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    train_iter = BookBatches(ds.train_images, ds.train_labels, batch_size, shuffle=True, seed=seed, resize=resize)
    test_iter = BookBatches(ds.test_images, ds.test_labels, batch_size, shuffle=False, resize=resize)
    return train_iter, test_iter


def check_input(net, image_shape):
    """Raise ``shapes.InputTooSmallError`` (naming the layer and the smallest size) if the images are too small."""
    try:
        shapes.check_input_size(net, tuple(image_shape[1:]), in_channels=image_shape[0])
    except shapes.InputTooSmallError:
        raise
    except Exception:  # a net that shapes cannot follow: its forward pass will say what is wrong
        pass


# ---------------------------------------------------------------------------------------------
# How much of a run to do here

@dataclass
class RunPlan:
    """What a book run trains on (lesson 00): the iterables, the epochs, and the line that says what was cut."""
    train_iter: object
    test_iter: object
    num_epochs: int
    note: str = None


def estimate_seconds(seconds_per_image, train_examples, test_examples, num_epochs):
    """Estimated run time: training images at ``seconds_per_image``, test images (forward only) at a third of it."""
    return num_epochs * (train_examples + test_examples / 3) * seconds_per_image


def _of(part, whole):
    return f"{part.num_examples:,} of {whole.num_examples:,}"


def plan_run(net, train_iter, test_iter, num_epochs, device, *, shrink=True, fast=None, seconds_per_image=None):
    """Decide how much of the run to do here (lesson 00): all of it, a fast-mode run, or a CPU-sized run.

    Only ``BookBatches`` can be cut to a subset; for other iterables fast mode only caps the epochs.
    ``seconds_per_image`` replaces the CPU measurement (tests).
    """
    fast = runtime.fast_mode() if fast is None else fast
    ours = isinstance(train_iter, BookBatches) and (test_iter is None or isinstance(test_iter, BookBatches))
    if not shrink:
        return RunPlan(train_iter, test_iter, num_epochs)
    if fast:
        return _fast_plan(train_iter, test_iter, num_epochs, ours)
    if device.type == "cpu" and ours:
        t = (seconds_per_image if seconds_per_image is not None else
             presets.measure_seconds_per_image(net, train_iter.image_shape))
        return _cpu_plan(net, train_iter, test_iter, num_epochs, t)
    return RunPlan(train_iter, test_iter, num_epochs)


def _cut(train_iter, test_iter, train_size, test_size, num_epochs, epochs, why, batch_size=None):
    small_train = train_iter.subset(train_size, batch_size=batch_size)
    small_test = test_iter.subset(test_size, batch_size=batch_size) if test_iter is not None else None
    test_part = f" and {_of(small_test, test_iter)} test" if test_iter is not None else ""
    batches = (f" in batches of {small_train.batch_size}" if small_train.batch_size != train_iter.batch_size else "")
    return RunPlan(small_train, small_test, epochs, f"{why} {_of(small_train, train_iter)} training{test_part} "
                                                    f"images{batches}, {epochs} of {num_epochs} epochs")


def _fast_plan(train_iter, test_iter, num_epochs, ours):
    epochs = min(num_epochs, FAST_EPOCHS)
    if not ours:
        return RunPlan(train_iter, test_iter, epochs,
                       f"NIN_FAST=1: {epochs} of {num_epochs} epochs (unset NIN_FAST for the full run)")
    plan = _cut(train_iter, test_iter, FAST_TRAIN, FAST_TEST, num_epochs, epochs, "NIN_FAST=1: a quick run on")
    plan.note += " (unset NIN_FAST for the book's full run)"
    return plan


def step_bytes(net, image_shape, batch_size):
    """Memory one training step of ``net`` needs for a batch (``shapes.cost``), or None where it cannot be told."""
    if net is None:
        return None
    try:
        return shapes.cost(net, tuple(image_shape[1:]), batch_size, in_channels=image_shape[0])["train_bytes"]
    except (ValueError, RuntimeError):
        return None


def _cpu_batch(net, image_shape, batch_size, images_in_time):
    """The book's batch size, or the largest power of two below it whose training step fits ``CPU_MEMORY`` and of
    which at least four batches fit the check's time."""
    while batch_size > 1 and ((step_bytes(net, image_shape, batch_size) or 0) > CPU_MEMORY
                              or 4 * batch_size > images_in_time):
        batch_size = 2 ** (math.ceil(math.log2(batch_size)) - 1)
    return batch_size


def _cpu_plan(net, train_iter, test_iter, num_epochs, seconds_per_image):
    t = seconds_per_image
    n_test = test_iter.num_examples if test_iter is not None else 0
    full = estimate_seconds(t, train_iter.num_examples, n_test, num_epochs)
    if full <= CPU_BUDGET_S:
        need, free = step_bytes(net, train_iter.image_shape, train_iter.batch_size), runtime.available_memory("cpu")
        if need is not None and free is not None and need > free:
            raise checks.refuse(f"one training step of this net on batches of {train_iter.batch_size} needs about "
                                f"{need / 2**30:.1f} GiB but this CPU has {free / 2**30:.1f} GiB free; load the data "
                                "with a smaller batch_size")
        return RunPlan(train_iter, test_iter, num_epochs)
    epochs = min(num_epochs, CPU_EPOCHS)
    fits = CPU_TARGET_S / estimate_seconds(t, 1, 0.5 if n_test else 0, epochs)
    batch_size = _cpu_batch(net, train_iter.image_shape, train_iter.batch_size, fits)
    train_size = min(train_iter.num_examples, max(batch_size, int(fits // batch_size) * batch_size))
    side = "×".join(map(str, train_iter.image_shape[1:]))
    why = (f"cpu: training runs at about {1 / t:.1f} images/s here, so the full run "
           f"({train_iter.num_examples:,} images × {num_epochs} epochs at {side}) would take about "
           f"{presets.duration(full)}; running a short check instead:")
    return _cut(train_iter, test_iter, train_size, max(train_size // 2, 1), num_epochs, epochs, why, batch_size)


def _move(batches, device):
    return batches.to(device) if isinstance(batches, BookBatches) else batches


def prepare_run(net, train_iter, test_iter, num_epochs, device, *, shrink=True, file=None):
    """``plan_run``, its one printed line, and the batches it keeps moved to ``device`` (lesson 00): the path
    d2l-zh's ``train_ch6`` and d2l-en's ``Trainer.fit`` share on their way to ``train.fit``."""
    plan = plan_run(net, train_iter, test_iter, num_epochs, device, shrink=shrink)
    if plan.note:
        print(plan.note, file=file)
    plan.train_iter, plan.test_iter = _move(plan.train_iter, device), _move(plan.test_iter, device)
    return plan
