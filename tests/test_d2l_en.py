"""nin_lib.d2l's d2l-en names (Classifier, Trainer, FashionMNIST, ...) with d2l 1.0's signatures and meaning (lesson 00)."""
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nin_lib import d2l, d2l_en, resources, shapes, train, viz
from conftest import SEED_LINES

ROOT = Path(__file__).resolve().parent.parent
BOOK = Path(__file__).resolve().parent / "d2l_en_nin.py"

# what the book prints for NiN().layer_summary((1, 1, 224, 224)): the seed's shape loop, line for line
LAYER_SUMMARY = SEED_LINES

# the parameter names (and the defaults that carry meaning) of d2l 1.0.3's d2l/torch.py
D2L_SIGNATURES = {
    "HyperParameters.save_hyperparameters": ["self", "ignore"],
    "ProgressBoard.__init__": ["self", "xlabel", "ylabel", "xlim", "ylim", "xscale", "yscale", "ls", "colors", "fig",
                               "axes", "figsize", "display"],
    "ProgressBoard.draw": ["self", "x", "y", "label", "every_n"],
    "Module.__init__": ["self", "plot_train_per_epoch", "plot_valid_per_epoch"],
    "Module.loss": ["self", "y_hat", "y"],
    "Module.forward": ["self", "X"],
    "Module.plot": ["self", "key", "value", "train"],
    "Module.training_step": ["self", "batch"],
    "Module.validation_step": ["self", "batch"],
    "Module.configure_optimizers": ["self"],
    "Module.apply_init": ["self", "inputs", "init"],
    "Classifier.validation_step": ["self", "batch"],
    "Classifier.accuracy": ["self", "Y_hat", "Y", "averaged"],
    "Classifier.loss": ["self", "Y_hat", "Y", "averaged"],
    "Classifier.layer_summary": ["self", "X_shape"],
    "DataModule.__init__": ["self", "root", "num_workers"],
    "DataModule.get_dataloader": ["self", "train"],
    "DataModule.train_dataloader": ["self"],
    "DataModule.val_dataloader": ["self"],
    "FashionMNIST.__init__": ["self", "batch_size", "resize"],
    "FashionMNIST.text_labels": ["self", "indices"],
    "FashionMNIST.get_dataloader": ["self", "train"],
    "FashionMNIST.visualize": ["self", "batch", "nrows", "ncols", "labels"],
    "Trainer.__init__": ["self", "max_epochs", "num_gpus", "gradient_clip_val"],
    "Trainer.prepare_data": ["self", "data"],
    "Trainer.prepare_model": ["self", "model"],
    "Trainer.fit": ["self", "model", "data"],
    "init_cnn": ["module"],
}
D2L_DEFAULTS = {
    "ProgressBoard.__init__": {"xscale": "linear", "yscale": "linear", "figsize": (3.5, 2.5), "display": True},
    "ProgressBoard.draw": {"every_n": 1},
    "Module.__init__": {"plot_train_per_epoch": 2, "plot_valid_per_epoch": 1},
    "Module.apply_init": {"init": None},
    "Classifier.accuracy": {"averaged": True},
    "Classifier.loss": {"averaged": True},
    "DataModule.__init__": {"num_workers": 4},
    "FashionMNIST.__init__": {"batch_size": 64, "resize": (28, 28)},
    "FashionMNIST.visualize": {"nrows": 1, "ncols": 8},
    "Trainer.__init__": {"num_gpus": 0, "gradient_clip_val": 0},
}


def _named(path):
    obj = d2l
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.fixture(scope="module")
def fmnist64():
    """d2l.FashionMNIST(batch_size=64) at the native 28 px (the files are read once for this module)."""
    torch.manual_seed(0)
    return d2l.FashionMNIST(batch_size=64)


class TinyData(d2l.DataModule):
    """A few batches of ``source``'s images, for runs that take a second."""

    def __init__(self, source, train_size=512, val_size=256):
        super().__init__()
        self.train = source.train_dataloader().subset(train_size)
        self.val = source.val_dataloader().subset(val_size)

    def get_dataloader(self, train):
        return self.train if train else self.val


class TinyNet(d2l.Classifier):
    """The book's pattern on a net that trains in a second: lazy convs, 1×1 conv to the classes, global pooling."""

    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.LazyConv2d(8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.LazyConv2d(num_classes, kernel_size=1), nn.AdaptiveAvgPool2d((1, 1)),
                                 nn.Flatten())
        self.net.apply(d2l.init_cnn)


def tiny_model(source, lr=0.1, seed=0):
    torch.manual_seed(seed)
    model = TinyNet(lr=lr)
    model.apply_init([next(iter(source.get_dataloader(True)))[0]], d2l.init_cnn)
    return model


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def book_definitions():
    """The book's nin_block and NiN, from the script's cells before the first one that runs something."""
    text = BOOK.read_text()
    namespace = {}
    exec(compile(text[:text.index("NiN().layer_summary")], str(BOOK), "exec"), namespace)
    return namespace


# ---------------------------------------------------------------------------------------------
# The book's section, run as a script

RUN_BOOK = r"""
import json, runpy, sys
import torch
from nin_lib import d2l
saved = {}
book_apply_init = d2l.Classifier.apply_init
def apply_init(self, inputs, init=None):
    book_apply_init(self, inputs, init)
    saved.update({k: v.detach().clone() for k, v in self.state_dict().items()})
d2l.Classifier.apply_init = apply_init
g = runpy.run_path(sys.argv[1], run_name="__main__")
model, trainer = g["model"], g["trainer"]
changed = [k for k, v in model.state_dict().items() if not torch.equal(v.cpu(), saved[k].cpu())]
print("RESULT " + json.dumps({"images": [e["images"] for e in trainer.history], "changed": changed,
                              "tensors": len(saved), "same": trainer.model is model, "stopped": trainer.history.stopped,
                              "board": list(model.board.data), "shown": model.board.curves.show}))
"""


@pytest.fixture(scope="module")
def book_run():
    """tests/d2l_en_nin.py run as a script under NIN_FAST=1: its output lines and what it left in model and trainer."""
    env = {**os.environ, "NIN_FAST": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-c", RUN_BOOK, str(BOOK)], capture_output=True, text=True, env=env,
                       cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("RESULT "), r.stdout
    return lines[:-1], json.loads(lines[-1][len("RESULT "):])


def test_the_script_is_the_books_cells_with_only_the_import_changed():
    text = BOOK.read_text()
    assert "from nin_lib import d2l\nimport torch\nfrom torch import nn\n" in text
    assert not any(line.startswith("from d2l import") for line in text.splitlines())
    for line in ("class NiN(d2l.Classifier):", "        self.net.apply(d2l.init_cnn)",
                 "NiN().layer_summary((1, 1, 224, 224))", "model = NiN(lr=0.05)",
                 "trainer = d2l.Trainer(max_epochs=10, num_gpus=1)",
                 "data = d2l.FashionMNIST(batch_size=128, resize=(224, 224))",
                 "model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)",
                 "trainer.fit(model, data)"):
        assert line in text.splitlines(), line


def test_the_book_prints_its_ten_layer_lines_then_only_the_fast_mode_line(book_run):
    lines, _ = book_run
    assert lines[:10] == LAYER_SUMMARY
    assert lines[10] == (f"NIN_FAST=1: a quick run on {d2l.FAST_TRAIN} of 60,000 training and {d2l.FAST_TEST} of "
                         f"10,000 test images in batches of {d2l.FAST_TRAIN}, {d2l.FAST_EPOCHS} of 10 epochs "
                         "(unset NIN_FAST for the book's full run)")
    assert len(lines) == 11  # d2l-en prints nothing but the board, which a script does not show


def test_the_book_trains_the_model_it_holds(book_run):
    _, result = book_run
    assert result["images"] == [d2l.FAST_TRAIN] * d2l.FAST_EPOCHS and not result["stopped"]
    assert result["same"]  # trainer.model is the book's model
    assert "net.0.0.weight" in result["changed"] and len(result["changed"]) > result["tensors"] // 2
    assert result["board"] == ["train_loss", "val_loss", "val_acc"] and result["shown"] is False


# ---------------------------------------------------------------------------------------------
# d2l's names and signatures

@pytest.mark.parametrize("path", sorted(D2L_SIGNATURES))
def test_each_name_takes_d2ls_parameters(path):
    parameters = inspect.signature(_named(path)).parameters
    assert list(parameters) == D2L_SIGNATURES[path]
    for name, default in D2L_DEFAULTS.get(path, {}).items():
        assert parameters[name].default == default, name


def test_the_names_are_d2l_ens_classes_in_d2ls_hierarchy():
    for name in ("HyperParameters", "ProgressBoard", "Module", "Classifier", "DataModule", "FashionMNIST",
                 "Trainer", "init_cnn"):
        assert getattr(d2l, name) is getattr(d2l_en, name)
    assert issubclass(d2l.Module, nn.Module) and issubclass(d2l.Module, d2l.HyperParameters)
    assert issubclass(d2l.Classifier, d2l.Module) and issubclass(d2l.FashionMNIST, d2l.DataModule)
    assert all(issubclass(c, d2l.HyperParameters) for c in (d2l.ProgressBoard, d2l.DataModule, d2l.Trainer))


def test_save_hyperparameters_keeps_the_callers_arguments():
    class Thing(d2l.HyperParameters):
        def __init__(self, a, b=2, _hidden=3, skipped=4):
            self.save_hyperparameters(ignore=["skipped"])

    thing = Thing(1)
    assert thing.hparams == {"a": 1, "b": 2} and (thing.a, thing.b) == (1, 2)
    assert not hasattr(thing, "skipped") and not hasattr(thing, "_hidden")


def test_loss_accuracy_and_optimiser_are_d2ls():
    model = TinyNet(lr=0.07)
    Y_hat, Y = torch.randn(6, 10), torch.tensor([0, 1, 2, 3, 4, 5])
    assert torch.allclose(model.loss(Y_hat, Y), F.cross_entropy(Y_hat, Y))
    assert torch.allclose(model.loss(Y_hat, Y, averaged=False), F.cross_entropy(Y_hat, Y, reduction="none"))
    Y_hat = torch.eye(10)[[0, 1, 2, 9, 9, 9]]
    assert model.accuracy(Y_hat, Y).item() == pytest.approx(0.5)
    assert model.accuracy(Y_hat, Y, averaged=False).tolist() == [1, 1, 1, 0, 0, 0]
    model.apply_init([torch.zeros(2, 1, 28, 28)])
    optimizer = model.configure_optimizers()
    group = optimizer.param_groups[0]
    assert type(optimizer) is torch.optim.SGD and group["lr"] == 0.07 and group["momentum"] == 0
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}


def test_apply_init_gives_lazy_layers_their_shapes_then_the_init():
    torch.manual_seed(0)
    model = TinyNet()
    assert isinstance(model.net[0].weight, nn.parameter.UninitializedParameter)  # init_cnn skipped it, as in d2l
    model.apply_init([torch.rand(5, 1, 28, 28)], d2l.init_cnn)
    conv = model.net[0]
    assert type(conv) is nn.Conv2d and conv.weight.shape == (8, 1, 3, 3) and model.net[3].weight.shape == (10, 8, 1, 1)
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
    bound = (6 / (fan_in + fan_out)) ** 0.5
    assert bound * 0.5 < conv.weight.abs().max().item() <= bound + 1e-6  # Xavier-uniform, the whole range


def test_layer_summary_prints_each_layer_and_its_output_shape(capsys):
    TinyNet().layer_summary((1, 1, 28, 28))
    assert capsys.readouterr().out.splitlines() == [
        "Conv2d output shape:\t torch.Size([1, 8, 28, 28])", "ReLU output shape:\t torch.Size([1, 8, 28, 28])",
        "MaxPool2d output shape:\t torch.Size([1, 8, 14, 14])", "Conv2d output shape:\t torch.Size([1, 10, 14, 14])",
        "AdaptiveAvgPool2d output shape:\t torch.Size([1, 10, 1, 1])", "Flatten output shape:\t torch.Size([1, 10])"]


# ---------------------------------------------------------------------------------------------
# FashionMNIST

def test_fashion_mnist_serves_the_books_batches(fmnist64, fmnist):
    train_iter, val_iter = fmnist64.get_dataloader(True), fmnist64.get_dataloader(False)
    assert train_iter is fmnist64.train_dataloader() and val_iter is fmnist64.val_dataloader()
    assert isinstance(train_iter, d2l.BookBatches) and (len(train_iter), len(val_iter)) == (938, 157)
    X, y = next(iter(val_iter))
    assert X.shape == (64, 1, 28, 28) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= X.min().item() and X.max().item() <= 1 and torch.equal(y, fmnist.test_labels[:64])
    first, second = (next(iter(train_iter))[1] for _ in range(2))
    assert not torch.equal(first, second)  # reshuffled every pass
    assert fmnist64.text_labels(torch.tensor([0, 9])) == ["t-shirt", "ankle boot"]


def test_resize_makes_square_batches_of_that_side():
    data = d2l.FashionMNIST(batch_size=32, resize=(40, 40))
    X, _ = next(iter(data.val_dataloader()))
    assert X.shape == (32, 1, 40, 40) and data.resize == (40, 40) and data.batch_size == 32


def test_visualize_shows_the_images_with_their_class_names(fmnist64):
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    assert fmnist64.visualize(next(iter(fmnist64.val_dataloader())), nrows=2, ncols=4) is None
    new = set(plt.get_fignums()) - before
    assert len(new) == 1
    fig = plt.figure(new.pop())
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == fmnist64.text_labels(fmnist64.val_dataloader().labels[:8])
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Trainer: training, the board, devices, clipping

def test_fit_trains_the_model_in_place_and_keeps_the_history(normal_mode, fmnist64, capsys):
    data = TinyData(fmnist64)
    model = tiny_model(data)
    before = weights(model)
    trainer = d2l.Trainer(max_epochs=2)
    assert trainer.fit(model, data) is None  # as d2l's
    assert trainer.model is model and model.trainer is trainer
    assert not any(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert len(trainer.history) == 2 and all(e["images"] == 512 for e in trainer.history)
    assert 0 <= trainer.history.final_test_acc <= 1 and not trainer.history.stopped
    assert capsys.readouterr().out == ""  # nothing was cut, and d2l-en prints nothing


def test_the_board_gets_d2ls_points(normal_mode, fmnist64):
    data = TinyData(fmnist64)  # 8 training and 4 validation batches of 64
    model = tiny_model(data)
    trainer = d2l.Trainer(max_epochs=2)
    trainer.fit(model, data)
    board = model.board
    assert list(board.data) == ["train_loss", "val_loss", "val_acc"]
    # train_loss: twice an epoch, the mean of 4 batches at the mean of their x = batch index / batches an epoch
    assert [p.x for p in board.data["train_loss"]] == [1.5 / 8, 5.5 / 8, 9.5 / 8, 13.5 / 8]
    history = trainer.history
    for epoch in range(2):
        halves = [p.y for p in board.data["train_loss"][2 * epoch:2 * epoch + 2]]
        assert sum(halves) / 2 == pytest.approx(history[epoch]["loss"], rel=1e-5)
    assert [p.x for p in board.data["val_loss"]] == [1, 2] and [p.x for p in board.data["val_acc"]] == [1, 2]
    assert [p.y for p in board.data["val_acc"]] == pytest.approx(history.test_acc, abs=1e-6)
    _, val_loss = train.evaluate(model, data.val_dataloader(), return_loss=True, loss=model.loss)
    assert board.data["val_loss"][-1].y == pytest.approx(val_loss, rel=1e-5)
    curves = board.curves
    assert curves.names == ("train_loss", "val_loss", "val_acc") and curves.show is False  # quiet in a script
    assert curves.points["val_acc"] == ([1.0, 2.0], [p.y for p in board.data["val_acc"]])
    assert curves.xlim == (0, 2) and curves.xlabel == "epoch"
    assert not model._forward_hooks  # the validation hook is gone after the run


def test_in_a_notebook_the_board_is_one_output_updated_in_place(normal_mode, fmnist64, monkeypatch):
    import IPython.display

    shown = []

    class Handle:
        def update(self, image):
            shown.append("update")

    monkeypatch.setattr(viz, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda image, display_id=None: shown.append("display") or Handle())
    data = TinyData(fmnist64, train_size=128, val_size=64)
    model = tiny_model(data)
    d2l.Trainer(max_epochs=1).fit(model, data)
    assert shown == ["display"] + ["update"] * 3  # train_loss twice, val_loss, val_acc


def test_a_stop_keeps_the_model_and_the_history(normal_mode, fmnist64, capsys):
    data = TinyData(fmnist64)
    model = tiny_model(data)
    book_loss, calls = model.training_loss, []

    def interrupted_at_batch_3(Y_hat, Y):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return book_loss(Y_hat, Y)

    model.training_loss = interrupted_at_batch_3
    before = weights(model)
    trainer = d2l.Trainer(max_epochs=2)
    trainer.fit(model, data)
    assert trainer.history.stopped and trainer.history[0]["partial"] and trainer.history[0]["batches"] == 2
    assert not any(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # two steps kept
    assert "interrupted" in capsys.readouterr().out


def test_num_gpus_uses_the_gpus_there_are_and_none_means_the_cpu(normal_mode, fmnist64, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert d2l.Trainer(1, num_gpus=1).gpus == [torch.device("cuda:0")]
    assert d2l.Trainer(1, num_gpus=4).gpus == [torch.device("cuda:0"), torch.device("cuda:1")]
    assert d2l.Trainer(1).gpus == []  # d2l's default num_gpus=0: the CPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = TinyData(fmnist64, train_size=128, val_size=64)
    model = tiny_model(data)
    trainer = d2l.Trainer(max_epochs=1, num_gpus=1)
    assert trainer.gpus == []
    trainer.fit(model, data)
    assert trainer.history.meta["device"].startswith("cpu") and len(trainer.history) == 1
    assert all(p.device.type == "cpu" for p in model.parameters())


def _update_norm(before, model, lr):
    return float(torch.sqrt(sum(((b - p.detach()) ** 2).sum() for b, p in zip(before, model.parameters())))) / lr


def test_gradient_clip_val_clips_the_trainers_steps(normal_mode, fmnist64):
    data = TinyData(fmnist64, train_size=64, val_size=64)  # one training step

    def update(clip):
        model = tiny_model(data, lr=1.0)
        before = weights(model)
        d2l.Trainer(max_epochs=1, gradient_clip_val=clip).fit(model, data)
        return _update_norm(before, model, 1.0)

    assert update(0) > 0.01  # d2l's default 0: no clipping
    assert update(1e-3) == pytest.approx(1e-3, rel=1e-3)


# ---------------------------------------------------------------------------------------------
# How much runs: as for train_ch6

def test_a_slow_cpu_cuts_the_run_with_train_ch6s_line(normal_mode, fmnist64, monkeypatch, capsys):
    monkeypatch.setattr(resources, "seconds_per_image", lambda net, image_shape: 0.05)
    model = tiny_model(fmnist64)
    trainer = d2l.Trainer(max_epochs=10)
    trainer.fit(model, fmnist64)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cpu: training runs at about 20.0 images/s")
    assert f"{d2l.CPU_EPOCHS} of 10 epochs" in lines[0] and len(trainer.history) == d2l.CPU_EPOCHS
    n = trainer.history[0]["images"]
    assert d2l.estimate_seconds(0.05, n, n // 2, d2l.CPU_EPOCHS) <= d2l.CPU_TARGET_S
    assert model.board.curves.xlim == (0, d2l.CPU_EPOCHS)


def test_fast_mode_cuts_the_run_as_for_train_ch6(monkeypatch, fmnist64, capsys):
    monkeypatch.setenv("NIN_FAST", "1")
    model = tiny_model(fmnist64)
    trainer = d2l.Trainer(max_epochs=10)
    trainer.fit(model, fmnist64)
    assert capsys.readouterr().out.startswith("NIN_FAST=1: a quick run on 16 of 60,000 training")
    assert [e["images"] for e in trainer.history] == [d2l.FAST_TRAIN] * d2l.FAST_EPOCHS


# ---------------------------------------------------------------------------------------------
# Bad input: one sentence

@pytest.mark.parametrize("make, match", [
    (lambda: d2l.Trainer(max_epochs=0), r"^max_epochs 0 is not allowed; use a whole number >= 1\.$"),
    (lambda: d2l.Trainer(10, num_gpus=-1), r"^num_gpus -1 is not allowed; use a whole number >= 0\.$"),
    (lambda: d2l.Trainer(10, gradient_clip_val=-1), r"^gradient_clip_val -1 is not allowed"),
    (lambda: d2l.FashionMNIST(batch_size=0), r"^batch_size 0 is not allowed; use a whole number >= 1\.$"),
    (lambda: d2l.FashionMNIST(resize=(224, 200)), r"^resize \(224, 200\) is not allowed; use a square size"),
    (lambda: d2l.FashionMNIST(resize=0), r"^resize 0 is not allowed"),
    (lambda: d2l.ProgressBoard(yscale="log"), r"^yscale 'log' is not known"),
])
def test_bad_arguments_are_one_sentence(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_negative_lr_is_one_sentence_and_nothing_trains(normal_mode, fmnist64, capsys):
    data = TinyData(fmnist64, train_size=64, val_size=64)
    model = tiny_model(data, lr=-0.1)
    before = weights(model)
    with pytest.raises(ValueError, match=r"^lr -0\.1 is not allowed; use a finite number > 0, such as 0\.1\.$"):
        d2l.Trainer(max_epochs=1).fit(model, data)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())) and capsys.readouterr().out == ""


def test_images_too_small_for_the_books_nin_name_the_layer_and_67(fmnist64):
    NiN = book_definitions()["NiN"]
    X = next(iter(fmnist64.train_dataloader()))[0]  # 28×28
    for run in (lambda: NiN().apply_init([X], d2l.init_cnn), lambda: NiN().layer_summary((1, 1, 28, 28)),
                lambda: d2l.Trainer(max_epochs=1).fit(NiN(), fmnist64)):
        with pytest.raises(shapes.InputSizeError, match=r"layer \d.*the smallest input it accepts is 67×67\.$"):
            run()


def test_a_model_with_its_own_training_step_is_refused(fmnist64):
    class OwnStep(TinyNet):
        def training_step(self, batch):
            return super().training_step(batch) * 2

    with pytest.raises(ValueError, match="defines its own training_step, which this Trainer does not call"):
        d2l.Trainer(max_epochs=1).fit(OwnStep(), TinyData(fmnist64, 64, 64))
