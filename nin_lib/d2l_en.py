"""d2l-en's object API on nin_lib (lesson 00), with d2l 1.0's signatures and meaning: ``FashionMNIST`` serves
``book.BookBatches``; ``Trainer.fit`` plans and trains as d2l-zh's ``train_ch6`` does (``book.prepare_run``, then
``book.fit``) with the model's ``forward``, ``loss`` and ``configure_optimizers``, the board fed from the very batches
it trains on."""
import inspect
from collections import namedtuple

import torch
from torch import nn
from torch.nn import functional as F

from . import book, checks, data, runtime, shapes, train, viz


class HyperParameters:
    """d2l's ``HyperParameters`` (lesson 00): ``save_hyperparameters()`` keeps the caller's arguments as attributes."""

    def save_hyperparameters(self, ignore=()):
        """Store the calling function's arguments (all but ``self``, ``ignore`` and names starting with _) as
        attributes and in ``self.hparams``."""
        local_vars = inspect.currentframe().f_back.f_locals
        skip = set(ignore) | {"self"}
        self.hparams = {k: v for k, v in local_vars.items() if k not in skip and not k.startswith("_")}
        for k, v in self.hparams.items():
            setattr(self, k, v)


Point = namedtuple("Point", ["x", "y"])


class ProgressBoard(HyperParameters):
    """d2l's ``ProgressBoard`` (lesson 00): ``draw(x, y, label, every_n)`` draws the mean of every ``every_n`` points
    of curve ``label`` (kept in ``data``) on a ``viz.LiveCurves`` of its own (``curves``), on linear axes."""

    def __init__(self, xlabel=None, ylabel=None, xlim=None, ylim=None, xscale="linear", yscale="linear",
                 ls=("-", "--", "-.", ":"), colors=("C0", "C1", "C2", "C3"), fig=None, axes=None, figsize=(3.5, 2.5),
                 display=True):
        checks.choice("xscale", xscale, ("linear",))
        checks.choice("yscale", yscale, ("linear",))
        if fig is not None or axes is not None:
            raise checks.refuse("ProgressBoard draws into a figure of its own here (nin_lib.viz.LiveCurves); "
                                "leave fig and axes as None")
        self.save_hyperparameters()
        self.raw_points, self.data, self.curves = {}, {}, None

    def draw(self, x, y, label, every_n=1):
        """Add the point (x, y) to curve ``label``; every ``every_n`` points, draw their mean (one float each: one
        wait for the GPU however many points) on the live curves, a new label adding a curve."""
        checks.whole_number("every_n", every_n, 1)
        points = self.raw_points.setdefault(label, [])
        points.append(Point(x, y))
        if len(points) < every_n:
            return
        n = len(points)
        point = Point(float(sum(p.x for p in points) / n), float(sum(p.y for p in points) / n))
        self.data.setdefault(label, []).append(point)
        points.clear()
        if self.curves is None:
            self.curves = viz.LiveCurves((label,), title="", show="auto" if self.display else False,
                                         styles=self.ls, colors=self.colors)
        self.curves.add_curve(label)
        c = self.curves
        c.xlabel, c.ylabel, c.figsize = self.xlabel or "", self.ylabel or "", self.figsize
        c.xlim = tuple(self.xlim) if self.xlim is not None else None
        c.ylim = tuple(self.ylim) if self.ylim is not None else None
        c.add(point.x, {label: point.y})
        c.draw()


class Module(nn.Module, HyperParameters):
    """d2l's ``Module`` (lesson 00): a model with its ``net``, ``loss``, optimiser and progress board. ``Trainer.fit``
    makes the forward pass itself and hands it to ``training_loss`` and ``validation_scores`` (the rest of d2l's
    ``training_step`` and ``validation_step``): change ``forward`` or ``loss`` rather than the steps."""

    def __init__(self, plot_train_per_epoch=2, plot_valid_per_epoch=1):
        super().__init__()
        self.save_hyperparameters()
        self.board = ProgressBoard()

    def loss(self, y_hat, y):
        raise NotImplementedError

    def forward(self, X):
        if "net" not in self._modules:
            raise checks.refuse(f"{type(self).__name__} has no net; set self.net in __init__ or define forward")
        return self.net(X)

    def plot(self, key, value, train):
        """d2l's ``plot``: a point for the board's ``train_KEY`` (plot_train_per_epoch an epoch) or ``val_KEY``
        (plot_valid_per_epoch an epoch), each the mean over the batches since the last one."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            raise checks.refuse(f"{type(self).__name__}.plot draws while a d2l.Trainer trains the model; "
                                "call trainer.fit(model, data)")
        self.board.xlabel = "epoch"
        if train:
            x = trainer.train_batch_idx / trainer.num_train_batches
            n = trainer.num_train_batches / self.plot_train_per_epoch
        else:
            x = trainer.epoch + 1
            n = trainer.num_val_batches / self.plot_valid_per_epoch
        value = value.detach() if isinstance(value, torch.Tensor) else value
        self.board.draw(x, value, ("train_" if train else "val_") + key, every_n=max(int(n), 1))

    def training_step(self, batch):
        """d2l's ``training_step``: the loss of one batch ``(X, ..., y)``, plotted."""
        return self.training_loss(self(*batch[:-1]), batch[-1])

    def training_loss(self, y_hat, y):
        """``training_step`` after the forward pass: the loss, plotted (``Trainer.fit`` calls it every batch)."""
        value = self.loss(y_hat, y)
        self.plot("loss", value, train=True)
        return value

    def validation_step(self, batch):
        """d2l's ``validation_step``: the scores of one validation batch, plotted."""
        self.validation_scores(self(*batch[:-1]), batch[-1])

    def validation_scores(self, y_hat, y):
        """``validation_step`` after the forward pass: plot the loss (``Trainer.fit`` calls it every batch)."""
        self.plot("loss", self.loss(y_hat, y), train=False)

    def configure_optimizers(self):
        """d2l's ``configure_optimizers``: plain SGD with ``self.lr``."""
        if not hasattr(self, "lr"):
            raise checks.refuse(f"{type(self).__name__} has no lr; take lr in __init__ and call "
                                "self.save_hyperparameters()")
        return torch.optim.SGD(self.parameters(), lr=checks.learning_rate(self.lr, "lr"))

    def apply_init(self, inputs, init=None):
        """d2l's ``apply_init``: a forward pass gives the lazy layers their shapes, then ``init`` is applied to
        ``self.net``. The pass uses the first example of each input: the shapes need no more."""
        device = next(self.parameters(), torch.zeros(())).device
        inputs = [x[:1].to(device) if isinstance(x, torch.Tensor) and x.dim() else x for x in inputs]
        if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].dim() == 4:
            shapes.check_input(self.net if "net" in self._modules else self, inputs[0].shape)
        with torch.no_grad():
            self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


class Classifier(Module):
    """d2l's ``Classifier`` (lesson 00): cross-entropy ``loss``, ``accuracy``, validation loss and accuracy on the
    board, and ``layer_summary``."""

    def validation_scores(self, Y_hat, Y):
        """``validation_step`` after the forward pass: plot the loss and the accuracy."""
        self.plot("loss", self.loss(Y_hat, Y), train=False)
        self.plot("acc", self.accuracy(Y_hat, Y), train=False)

    def accuracy(self, Y_hat, Y, averaged=True):
        """The fraction of correct predictions (``averaged=False``: 1.0 or 0.0 per example)."""
        preds = Y_hat.reshape(-1, Y_hat.shape[-1]).argmax(dim=1).type(Y.dtype)
        compare = (preds == Y.reshape(-1)).type(torch.float32)
        return compare.mean() if averaged else compare

    def loss(self, Y_hat, Y, averaged=True):
        """Cross-entropy of the class scores ``Y_hat`` against the labels ``Y`` (``averaged=False``: per example)."""
        return F.cross_entropy(Y_hat.reshape(-1, Y_hat.shape[-1]), Y.reshape(-1),
                               reduction="mean" if averaged else "none")

    def layer_summary(self, X_shape):
        """Print each layer of ``self.net`` and the shape of its output for a random input of ``X_shape``."""
        if len(X_shape) == 4:
            shapes.check_input(self.net, X_shape)
        X = torch.randn(*X_shape, device=next(self.parameters(), torch.zeros(())).device)
        with torch.no_grad():
            for layer in self.net:
                X = layer(X)
                print(layer.__class__.__name__, "output shape:\t", X.shape)


def init_cnn(module):
    """d2l's ``init_cnn`` (lesson 00): Xavier-uniform weights for a ``Linear`` or ``Conv2d`` (a lazy layer that has
    no shape yet is left alone, as in d2l; ``apply_init`` applies it after the shapes are known)."""
    if type(module) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)


class DataModule(HyperParameters):
    """d2l's ``DataModule`` (lesson 00); ``root``: the data folder (None: ``NIN_DATA_DIR``); ``num_workers`` is kept
    for d2l's signature (batches are made on the device, without worker processes)."""

    def __init__(self, root=None, num_workers=4):
        self.save_hyperparameters()

    def get_dataloader(self, train):
        raise NotImplementedError

    def train_dataloader(self):
        return self.get_dataloader(train=True)

    def val_dataloader(self):
        return self.get_dataloader(train=False)


def _square_side(resize):
    """The side of d2l's ``resize``: a side in pixels or a square (side, side)."""
    if checks.is_whole(resize):
        return checks.whole_number("resize", resize, 1, unit="of pixels")
    if (isinstance(resize, (tuple, list)) and len(resize) == 2 and all(checks.is_whole(v) and v >= 1 for v in resize)
            and resize[0] == resize[1]):
        return resize[0]
    raise checks.refuse(f"resize {resize!r} is not allowed; use a square size in pixels such as (224, 224)")


class FashionMNIST(DataModule):
    """d2l's ``FashionMNIST`` on nin_lib's batches (lesson 00): ``get_dataloader(train)`` returns the same
    ``BookBatches`` each time, images in [0, 1] resized to ``resize`` a whole batch at a time, the training batches
    reshuffled every pass (``torch.manual_seed`` makes the order repeatable)."""

    def __init__(self, batch_size=64, resize=(28, 28)):
        super().__init__()
        self.save_hyperparameters()
        checks.whole_number("batch_size", batch_size, 1)
        self._train, self._val = book.load_data_fashion_mnist(batch_size, _square_side(resize), self.root)

    def text_labels(self, indices):
        """The class names of label indices."""
        return data.text_labels(indices)

    def get_dataloader(self, train):
        return self._train if train else self._val

    def visualize(self, batch, nrows=1, ncols=8, labels=()):
        """Show the first ``nrows`` × ``ncols`` images of a batch ``(X, y)`` with their class names (or ``labels``)."""
        X, y = batch
        images = list(X[:nrows * ncols].squeeze(1))
        titles = list(labels) or self.text_labels(y)
        viz.feature_maps(images, titles=titles[:len(images)], title="Fashion-MNIST", ncols=ncols, cmap="gray",
                         cbar_label="brightness (0 to 1)", size=1.5)


class _Validation:
    """The validation batches as ``train.fit`` evaluates on them, with d2l's ``validation_step`` on top: while the
    evaluation goes through them, every batch's scores go to ``model.validation_scores`` (one forward pass)."""

    def __init__(self, trainer, batches):
        self.trainer, self.batches, self.labels = trainer, batches, None

    def __iter__(self):
        handle = self.trainer.model.register_forward_hook(self._score)
        try:
            for X, y in self.batches:
                self.labels = y
                yield X, y
        finally:
            handle.remove()
            self.labels = None

    def _score(self, model, inputs, Y_hat):
        if model.training or self.labels is None:
            return
        model.validation_scores(Y_hat, self.labels.to(Y_hat.device))
        self.trainer.val_batch_idx += 1


class Trainer(HyperParameters, train.Callback):
    """d2l's ``Trainer`` (lesson 00): ``Trainer(max_epochs, num_gpus=0, gradient_clip_val=0).fit(model, data)`` runs
    ``train.fit`` on the first GPU if asked and there (else the CPU, as d2l does), clipping the gradients' norm to
    ``gradient_clip_val`` if > 0; ``history`` holds the ``train.History`` of the last run. It is also that run's
    callback, counting ``epoch`` and ``train_batch_idx`` as d2l's loop does (``Module.plot`` reads them)."""

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0):
        checks.whole_number("max_epochs", max_epochs, 1)
        checks.whole_number("num_gpus", num_gpus, 0)
        checks.number("gradient_clip_val", gradient_clip_val, 0)
        self.save_hyperparameters()
        self.gpus = [torch.device(f"cuda:{i}") for i in range(min(num_gpus, torch.cuda.device_count()))]
        self.history = None

    num_train_batches = property(lambda self: len(self.train_dataloader))
    num_val_batches = property(lambda self: len(self.val_dataloader) if self.val_dataloader is not None else 0)

    def prepare_data(self, data):
        """Take the data module's loaders (``num_train_batches`` and ``num_val_batches`` count their batches)."""
        self.train_dataloader = data.train_dataloader()
        self.val_dataloader = data.val_dataloader()

    def prepare_model(self, model):
        """Tie the model to this trainer (its board's x axis spans the epochs that will run)."""
        model.trainer = self
        model.board.xlim = [0, getattr(self, "num_epochs", self.max_epochs)]
        self.model = model

    def fit(self, model, data):
        """Train ``model`` on ``data``; the trained weights stay in ``model``, the results go to ``self.history``."""
        if not isinstance(model, Module):
            raise checks.refuse(f"Trainer.fit trains a d2l.Module such as d2l.Classifier, not a {type(model).__name__}")
        for name in ("training_step", "validation_step"):
            if getattr(type(model), name) is not getattr(Module, name):
                raise checks.refuse(f"{type(model).__name__} defines its own {name}, which this Trainer does not call "
                                    "(it makes the forward pass itself, then uses the model's loss); change loss or "
                                    "forward instead")
        self.prepare_data(data)
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
            model.apply_init([next(iter(self.train_dataloader))[0]])  # shapes from a batch, as d2l's first step
        self.optim = model.configure_optimizers()
        device = runtime.pick_device(self.gpus[0] if self.gpus else "cpu")
        plan = book.prepare_run(model.net if "net" in model._modules else model, self.train_dataloader,
                                self.val_dataloader, self.max_epochs, device)
        self.train_dataloader, self.val_dataloader, self.num_epochs = plan.train_iter, plan.test_iter, plan.num_epochs
        self.prepare_model(model)
        self.epoch = self.train_batch_idx = self.val_batch_idx = 0
        validation = _Validation(self, plan.test_iter) if plan.test_iter is not None else None
        clip = [train.GradClip(self.gradient_clip_val)] if self.gradient_clip_val > 0 else []
        self.history = book.fit(model, plan._replace(test_iter=validation), device, self.optim, model.training_loss,
                                [self, *clip])

    def on_batch_end(self, run):
        self.epoch = run.epoch
        self.train_batch_idx += 1
