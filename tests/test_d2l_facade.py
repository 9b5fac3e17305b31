"""nin_lib.d2l: the book's names (load_data_fashion_mnist, train_ch6, try_gpu) with the book's meaning (lesson 00)."""
import functools
import math
import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nin_lib import d2l, data, models, shapes, train, viz

LOSS_LINE = re.compile(r"^loss \d+\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}$")
SPEED_LINE = re.compile(r"^\d+\.\d examples/sec on cpu$")


@pytest.fixture(scope="module")
def iters28():
    """The book's iterables at the native 28 px (cheap to go through whole)."""
    torch.manual_seed(0)
    return d2l.load_data_fashion_mnist(1000)


def tiny_net():
    """A net small enough to train in a second on a CPU: conv, 1×1 conv to 10 maps, global average pooling."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 10, kernel_size=1), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Linear(10, 10))


@functools.lru_cache(maxsize=None)
def _book_iters(batch_size):
    torch.manual_seed(0)
    return d2l.load_data_fashion_mnist(batch_size)


def tiny_iters(train_size=512, test_size=256, batch_size=64):
    """Subsets of the book's 28-px iterables (the files are read once per batch size)."""
    train_iter, test_iter = _book_iters(batch_size)
    return train_iter.subset(train_size), test_iter.subset(test_size)


# ---------------------------------------------------------------------------------------------
# try_gpu

def test_try_gpu_picks_cuda_i_or_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert d2l.try_gpu() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert d2l.try_gpu() == torch.device("cuda:0")
    assert d2l.try_gpu(1) == torch.device("cuda:1")
    assert d2l.try_gpu(2) == torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# load_data_fashion_mnist

def test_batches_have_the_books_shapes_dtypes_and_range():
    train_iter, test_iter = d2l.load_data_fashion_mnist(128, resize=224)
    assert (len(train_iter), len(test_iter)) == (469, 79)  # ceil(60000/128), ceil(10000/128)
    for it in (train_iter, test_iter):
        X, y = next(iter(it))
        assert X.shape == (128, 1, 224, 224) and X.dtype == torch.float32
        assert y.shape == (128,) and y.dtype == torch.int64
        assert 0.0 <= X.min().item() and X.max().item() <= 1.0
        assert X.max().item() > 0.9 and int(y.min()) >= 0 and int(y.max()) <= 9


def test_batches_match_the_books_pipeline_within_one_grey_level(fmnist):
    """The book resizes each PIL image then applies ToTensor; we resize whole batches as tensors."""
    from PIL import Image
    from torchvision import transforms

    book = transforms.Compose([transforms.Resize(224), transforms.ToTensor()])
    expected = torch.stack([book(Image.fromarray(im.numpy())) for im in fmnist.test_images[:32]])
    _, test_iter = d2l.load_data_fashion_mnist(32, resize=224)
    X, y = next(iter(test_iter))
    assert torch.equal(y, fmnist.test_labels[:32])
    assert (X - expected).abs().max().item() <= 1 / 255 + 1e-6


def test_without_resize_the_images_are_28_pixels(iters28):
    X, _ = next(iter(iters28[1]))
    assert X.shape == (1000, 1, 28, 28)


def test_train_is_reshuffled_every_epoch_and_test_is_in_order(iters28, fmnist):
    train_iter, test_iter = iters28
    first = torch.cat([y for _, y in train_iter])
    second = torch.cat([y for _, y in train_iter])
    assert not torch.equal(first, second)
    assert torch.equal(first.sort().values, fmnist.train_labels.sort().values)  # every example once
    assert torch.equal(second.sort().values, fmnist.train_labels.sort().values)
    for _ in range(2):
        assert torch.equal(torch.cat([y for _, y in test_iter]), fmnist.test_labels)


def test_the_shuffle_follows_torch_manual_seed():
    orders = []
    for _ in range(2):
        torch.manual_seed(7)
        train_iter, _ = d2l.load_data_fashion_mnist(2000)
        orders.append(next(iter(train_iter))[1])
    assert torch.equal(orders[0], orders[1])


def test_the_last_batch_is_smaller(iters28):
    *_, (X, y) = iter(d2l.load_data_fashion_mnist(768)[1])
    assert X.shape[0] == y.shape[0] == 10000 % 768


def test_to_moves_the_images_once_and_batches_follow(iters28):
    _, test_iter = tiny_iters()
    assert test_iter.to("cpu") is test_iter and test_iter.device == torch.device("cpu")
    if torch.cuda.is_available():
        test_iter.to("cuda")
        X, y = next(iter(test_iter))
        assert test_iter.images.is_cuda and X.is_cuda and y.is_cuda


def test_subset_keeps_order_and_settings(iters28, fmnist):
    small = iters28[1].subset(300)
    assert small.num_examples == 300 and small.batch_size == 300 and not small.shuffle
    y = torch.cat([y for _, y in small])
    assert torch.equal(y, fmnist.test_labels[data.subset_indices(10000, 300, d2l.SUBSET_SEED)])
    assert iters28[0].subset(2000).shuffle and iters28[0].subset(2000).batch_size == 1000


# ---------------------------------------------------------------------------------------------
# train_ch6: the book's output

def test_train_ch6_prints_the_two_closing_lines_and_returns_none(normal_mode, capsys):
    train_iter, test_iter = tiny_iters()
    assert d2l.train_ch6(tiny_net(), train_iter, test_iter, 2, 0.1, "cpu") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "training on cpu"
    assert LOSS_LINE.match(lines[-2]), lines
    assert SPEED_LINE.match(lines[-1]), lines
    assert len(lines) == 3  # nothing was cut: no plan line


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_data_moves_to_the_gpu_once_and_the_line_names_it(normal_mode, capsys):
    train_iter, test_iter = tiny_iters()
    history = d2l.fit_ch6(tiny_net(), train_iter, test_iter, 2, 0.1, d2l.try_gpu())
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "training on cuda:0" and lines[-1].endswith("examples/sec on cuda:0")
    assert LOSS_LINE.match(lines[-2]) and len(history) == 2
    assert train_iter.images.is_cuda and test_iter.images.is_cuda
    assert history.meta["amp"] and history.meta["channels_last"]  # bf16 and channels_last on CUDA


def test_fast_mode_cuts_the_run_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv("NIN_FAST", "1")
    train_iter, test_iter = tiny_iters()
    history = d2l.fit_ch6(tiny_net(), train_iter, test_iter, 10, 0.1, "cpu")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("NIN_FAST=1:") and f"{d2l.FAST_EPOCHS} of 10 epochs" in lines[1]
    assert len(history) == d2l.FAST_EPOCHS
    assert all(e["images"] == d2l.FAST_TRAIN for e in history)
    assert LOSS_LINE.match(lines[-2]) and SPEED_LINE.match(lines[-1])


def test_examples_per_second_is_training_images_over_training_wall_time(normal_mode, capsys):
    train_iter, test_iter = tiny_iters()
    history = d2l.fit_ch6(tiny_net(), train_iter, test_iter, 2, 0.1, "cpu")
    printed = float(capsys.readouterr().out.strip().splitlines()[-1].split()[0])
    images = sum(e["images"] for e in history)
    seconds = sum(e["train_seconds"] for e in history)
    assert images == 2 * 512
    assert printed == pytest.approx(images / seconds, rel=1e-3, abs=0.06)


# ---------------------------------------------------------------------------------------------
# train_ch6: the book's semantics, asserted through spies

@pytest.fixture
def spied_fit(monkeypatch):
    """Replace train.fit with a spy that records its arguments and the weights it was given, then runs it."""
    calls = []
    real_fit = train.fit

    def spy(net, train_iter, test_iter=None, **kwargs):
        weights = {name: m.weight.detach().clone() for name, m in net.named_modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear))}
        calls.append({"net": net, "kwargs": kwargs, "weights": weights, "test_iter": test_iter})
        return real_fit(net, train_iter, test_iter, **kwargs)

    monkeypatch.setattr(train, "fit", spy)
    return calls


def test_weights_are_xavier_uniform_when_training_starts(normal_mode, spied_fit, monkeypatch):
    net = models.nin(arch=28, width=0.25)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.constant_(m.weight, 5.0)  # anything but Xavier
    seen = []
    real = nn.init.xavier_uniform_
    monkeypatch.setattr(nn.init, "xavier_uniform_", lambda w, *a, **k: (seen.append(w), real(w, *a, **k))[1])
    train_iter, test_iter = tiny_iters(train_size=64, test_size=64)
    d2l.fit_ch6(net, train_iter, test_iter, 1, 0.05, "cpu", max_steps=1)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert {id(w) for w in seen} == {id(m.weight) for m in layers}
    for name, w in spied_fit[0]["weights"].items():
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w)
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert w.abs().max().item() <= bound + 1e-6, name
        assert w.abs().max().item() > 0.5 * bound, name  # spread over the whole range, not a constant


def test_the_optimiser_is_plain_sgd_with_the_given_lr_and_the_loss_is_cross_entropy(normal_mode, spied_fit):
    net = tiny_net()
    train_iter, test_iter = tiny_iters()
    d2l.fit_ch6(net, train_iter, test_iter, 1, 0.07, "cpu")
    kwargs = spied_fit[0]["kwargs"]
    optimizer = kwargs["optimizer"]
    assert type(optimizer) is torch.optim.SGD
    group = optimizer.param_groups[0]
    assert len(optimizer.param_groups) == 1 and group["lr"] == 0.07
    assert group["momentum"] == 0 and group["weight_decay"] == 0 and group["dampening"] == 0
    assert not group["nesterov"]
    assert {id(p) for p in group["params"]} == {id(p) for p in net.parameters()}
    assert kwargs.get("scheduler") is None and kwargs.get("lr") is None
    loss = kwargs["loss"]
    assert isinstance(loss, nn.CrossEntropyLoss)
    y_hat, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    assert torch.allclose(loss(y_hat, y), F.cross_entropy(y_hat, y))


def test_one_step_moves_the_weights_by_lr_times_the_gradient(normal_mode):
    """The SGD step itself: w_new = w - lr * grad (no momentum, no weight decay)."""
    torch.manual_seed(0)
    net = tiny_net()
    train_iter, test_iter = tiny_iters(train_size=64, test_size=64, batch_size=64)
    grads, before = {}, {}

    def hook(name):
        def save(grad):
            grads[name] = grad.detach().clone()
        return save

    real_init = models.init_xavier

    def init_then_watch(n):
        real_init(n)
        for name, p in n.named_parameters():
            before[name] = p.detach().clone()
            p.register_hook(hook(name))
        return n

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "init_xavier", init_then_watch)
        d2l.fit_ch6(net, train_iter, test_iter, 1, 0.3, "cpu", max_steps=1)
    for name, p in net.named_parameters():
        assert torch.allclose(p.detach(), before[name] - 0.3 * grads[name], atol=1e-6), name


def test_the_test_set_is_evaluated_after_every_epoch(normal_mode, monkeypatch):
    calls = []
    real = train.evaluate

    def spy(net, data_iter, *args, **kwargs):
        calls.append(data_iter)
        return real(net, data_iter, *args, **kwargs)

    monkeypatch.setattr(train, "evaluate", spy)
    train_iter, test_iter = tiny_iters()
    history = d2l.fit_ch6(tiny_net(), train_iter, test_iter, 3, 0.1, "cpu")
    assert len(calls) == 3 and all(c is test_iter for c in calls)
    assert [e["test_acc"] is not None for e in history] == [True] * 3


def test_the_live_plot_gets_the_books_points(normal_mode):
    curves = viz.LiveCurves(show=False)
    train_iter, test_iter = tiny_iters(batch_size=64)  # 8 batches an epoch: points after batches 1..8
    d2l.fit_ch6(tiny_net(), train_iter, test_iter, 2, 0.1, "cpu", curves=curves)
    xs, ys = curves.points["train loss"]
    assert xs == [e + b / 8 for e in range(2) for b in range(1, 9)]
    assert all(0 < y < 10 for y in ys)
    assert curves.points["test acc"][0] == [1.0, 2.0]
    assert all(0 <= a <= 1 for a in curves.points["train acc"][1])
    fig = curves.figure
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["train loss", "train acc", "test acc"]
    assert ax.get_xlabel() == "epoch" and ax.get_title()


# ---------------------------------------------------------------------------------------------
# How much runs

def test_plan_cuts_a_slow_cpu_run_to_the_target(iters28):
    train_iter, test_iter = iters28
    plan = d2l.plan_run(None, train_iter, test_iter, 10, torch.device("cpu"), fast=False, seconds_per_image=0.05)
    assert plan.num_epochs == d2l.CPU_EPOCHS
    n = plan.train_iter.num_examples
    assert plan.train_iter.batch_size <= train_iter.batch_size  # smaller batches where the book's do not fit
    assert n % plan.train_iter.batch_size == 0 and plan.test_iter.num_examples == n // 2
    assert d2l.estimate_seconds(0.05, n, n // 2, plan.num_epochs) <= d2l.CPU_TARGET_S
    assert d2l.estimate_seconds(0.05, n + 1000, (n + 1000) // 2, plan.num_epochs) > d2l.CPU_TARGET_S
    assert plan.note.startswith("cpu: training runs at about 20.0 images/s") and f"{d2l.CPU_EPOCHS} of 10 epochs" in plan.note


def test_plan_keeps_a_run_that_fits_and_what_is_asked(iters28):
    train_iter, test_iter = iters28
    quick = d2l.plan_run(None, train_iter, test_iter, 10, torch.device("cpu"), fast=False, seconds_per_image=1e-7)
    assert quick.train_iter is train_iter and quick.num_epochs == 10 and quick.note is None
    forced = d2l.plan_run(None, train_iter, test_iter, 10, torch.device("cpu"), shrink=False, fast=True)
    assert forced.train_iter is train_iter and forced.num_epochs == 10
    gpu = d2l.plan_run(None, train_iter, test_iter, 10, torch.device("cuda"), fast=False)
    assert gpu.train_iter is train_iter and gpu.note is None


def test_fast_mode_caps_epochs_of_other_iterables():
    loader = [(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))]
    plan = d2l.plan_run(None, loader, loader, 10, torch.device("cpu"), fast=True)
    assert plan.train_iter is loader and plan.num_epochs == d2l.FAST_EPOCHS and "NIN_FAST=1" in plan.note


def test_a_plain_list_of_batches_trains_too(normal_mode, capsys):
    torch.manual_seed(0)
    batches = [(torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))) for _ in range(3)]
    d2l.train_ch6(tiny_net(), batches, batches, 2, 0.1, "cpu")
    lines = capsys.readouterr().out.strip().splitlines()
    assert LOSS_LINE.match(lines[-2]) and SPEED_LINE.match(lines[-1])


# ---------------------------------------------------------------------------------------------
# Bad input

def test_an_image_too_small_for_the_net_names_the_smallest_size(normal_mode, capsys):
    _, test_iter = tiny_iters()
    net = models.nin()
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(shapes.InputSizeError, match="67"):
        d2l.train_ch6(net, test_iter, test_iter, 1, 0.1, "cpu")
    assert capsys.readouterr().out == ""  # nothing printed, nothing changed
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("lr, num_epochs, match", [(-0.1, 1, "learning rate"), (0.1, 0, "num_epochs"),
                                                    (float("nan"), 1, "learning rate")])
def test_bad_hyper_parameters_are_one_sentence_errors(lr, num_epochs, match):
    train_iter, test_iter = tiny_iters(train_size=64, test_size=64)
    with pytest.raises(ValueError, match=match):
        d2l.train_ch6(tiny_net(), train_iter, test_iter, num_epochs, lr, "cpu")


def test_live_curves_reject_an_unknown_curve():
    curves = viz.LiveCurves(show=False)
    with pytest.raises(ValueError, match="not one of"):
        curves.add(1, {"val acc": 0.5})
    curves.add(1, {"test acc": None})  # None is skipped, as before the first evaluation
    assert curves.points["test acc"] == ([], [])

