"""Plots for the lessons (viz): each function takes data and returns a labelled matplotlib figure; no ipywidgets."""
import io
import sys
import textwrap
import threading
import time

import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from . import checks, data, shapes

LAYER_COLORS = {"k×k conv": "#4C72B0", "1×1 conv": "#55A868", "fully connected": "#C44E52",
                "pooling": "#8172B2", "other": "#BBBBBB"}  # one colour per kind of layer (block drawing, bars)
CURVE_STYLES = ("-", "--", "-.", ":")  # the line styles and colours of curves, one per curve in order
CURVE_COLORS = ("#1f77b4", "#9467bd", "#2ca02c", "#d62728")
PAST_COLORS = ("#8c564b", "#e377c2", "#7f7f7f")  # earlier runs on LiveCurves, newest first
SEED_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860")  # seed_spread's groups, in order


def _figure(figsize, *grid, title=None, layout="constrained", **subplots):
    """A new figure (pyplot's in the main thread, where a notebook shows it), its suptitle and its ``grid`` of axes;
    ``layout=None``: the caller places the axes (a panel's figure: the constrained layout costs half its drawing)."""
    new = plt.figure if threading.current_thread() is threading.main_thread() else Figure
    fig = new(figsize=figsize, layout=layout)
    if title is not None:
        fig.suptitle(title)
    return (fig, fig.subplots(*grid, **subplots)) if grid else fig


def _grid(n, ncols, cell, pad, title=None):
    """A figure of ``n`` axes in rows of ``ncols`` (cell and pad sizes in inches); spare axes are hidden."""
    nrows = -(-n // ncols)
    fig, axes = _figure((cell[0] * ncols + pad[0], cell[1] * nrows + pad[1]), nrows, ncols, title=title, squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat)


def _label(ax, xlabel, ylabel, title=None, fontsize=10, grid="both", legend=None):
    """Axis labels, a title, a light grid (``grid=None``: none) and a legend of ``legend`` font size."""
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title is not None:
        ax.set_title(title, fontsize=fontsize)
    if grid is not None:
        ax.grid(alpha=0.3, axis=grid)
    if legend is not None:
        ax.legend(fontsize=legend)


def _as_array(m, image=False):
    """A float array; ``image=True``: the 2-D image of an (H, W), (1, H, W) or (1, 1, H, W) tensor or array."""
    m = np.asarray(m.detach().float().cpu() if isinstance(m, torch.Tensor) else m, dtype=float)
    return m.reshape(m.shape[-2:]) if image else m


def _names(class_names, n):
    """The class names for ``n`` classes (Fashion-MNIST's by default), one per class."""
    class_names = data.CLASS_NAMES if class_names is None else class_names
    if len(class_names) != n:
        raise checks.refuse(f"{len(class_names)} class names for {n} classes; give one name per class")
    return class_names


# Lessons 01-02: feature maps, block drawings, where the parameters are
def feature_maps(maps, titles=None, title="feature maps", ncols=None, cmap=None, cbar_label="activation (a.u.)",
                 mark=None, size=2.6):
    """2-D maps side by side with colour bars, a signed map centred on 0, ``mark=(row, col)`` outlined (lesson 01)."""
    maps = [_as_array(m) for m in maps]
    if not maps or any(m.ndim != 2 for m in maps):
        raise checks.refuse(f"feature_maps needs a non-empty list of 2-D maps, got shapes {[m.shape for m in maps]}")
    if titles is not None and len(titles) != len(maps):
        raise checks.refuse(f"{len(titles)} titles for {len(maps)} maps; give one title per map")
    fig, axes = _grid(len(maps), ncols or len(maps), (size, size), (0.6, 0.5), title)
    for i, (ax, m) in enumerate(zip(axes, maps)):
        v = float(np.abs(m).max()) or 1.0
        style = dict(cmap="RdBu_r", vmin=-v, vmax=v) if cmap is None and m.min() < 0 else dict(cmap=cmap or "viridis")
        fig.colorbar(ax.imshow(m, **style), ax=ax, shrink=0.8, label=cbar_label)
        _label(ax, "x (pixels)", "y (pixels)", titles[i] if titles is not None else f"map {i}", fontsize=9, grid=None)
        if mark is not None:
            ax.add_patch(mpatches.Rectangle((mark[1] - 0.5, mark[0] - 0.5), 1, 1, fill=False, edgecolor="red",
                                            linewidth=1.5))
    return fig


def one_pixel_figure(image, features, outputs, weight, bias, pixel, title=None):
    """One pixel through a 1×1 conv as ``y = W·x + b``: the image and the pixel, x (the ``features`` there) as bars
    over the heat map of W, y as bars beside it, and ``outputs`` (the conv's own result there) as dots (lesson 01)."""
    features, outputs, weight, bias = (_as_array(v) for v in (features, outputs, weight, bias))
    row, col = pixel
    x, y = features[:, row, col], weight @ features[:, row, col] + bias
    fig = _figure((12.5, 6.2), title=title or f"one pixel through a 1×1 conv: y = W·x + b at pixel ({row}, {col}); "
                  f"largest |W·x + b − conv output| = {np.abs(y - outputs[:, row, col]).max():.1e}", layout=None)
    grid = fig.add_gridspec(3, 3, width_ratios=[1.25, 1.7, 0.9], height_ratios=[1, 3.2, 0.1], left=0.05, right=0.98,
                            top=0.89, bottom=0.07, wspace=0.28, hspace=0.42)
    ax_image, ax_x = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[0, 1])
    ax_w = fig.add_subplot(grid[1, 1], sharex=ax_x)
    ax_y = fig.add_subplot(grid[1, 2], sharey=ax_w)
    _show_image(ax_image, image)
    scale = image.shape[-1] / features.shape[-1]  # image pixels per feature-map pixel
    ax_image.add_patch(mpatches.Rectangle(((col - 0.5) * scale + (scale - 1) / 2, (row - 0.5) * scale + (scale - 1) / 2),
                                          scale, scale, fill=False, edgecolor="red", linewidth=2))
    ax_image.set_title(f"the input image; red: pixel ({row}, {col})", fontsize=10)
    ax_x.bar(range(len(x)), x, color="#4C72B0")
    _label(ax_x, "", "x (a.u.)", f"x: the {len(x)} input channels at the pixel", fontsize=9, grid="y")
    v = float(np.abs(weight).max()) or 1.0
    im = ax_w.imshow(weight, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto")
    fig.colorbar(im, cax=fig.add_subplot(grid[2, 1]), orientation="horizontal", label="weight (blue < 0 < red)")
    _label(ax_w, "input channel (column of W)", "output channel (row of W)",
           f"W: {weight.shape[0]}×{weight.shape[1]} weights, the same at every pixel", fontsize=9, grid=None)
    ax_y.barh(range(len(y)), y, color="#55A868", label="W·x + b")
    ax_y.plot(outputs[:, row, col], range(len(y)), "k.", markersize=5, label="the conv's output")
    ax_y.axvline(0, color="#888888", linewidth=0.8)
    _label(ax_y, "y (a.u.)", "", "y: the output channels", fontsize=9, grid="x", legend=7)
    return fig


def conv_cost_bars(costs, title="parameters and multiply-accumulates (linear scale)"):
    """{name: (parameters, MACs)} as bars on two linear axes, each bar labelled with its count (lesson 01)."""
    if not costs:
        raise checks.refuse("conv_cost_bars needs at least one {name: (parameters, MACs)} entry")
    fig, axes = _figure((9.5, 2.4 + 0.35 * len(costs)), 1, 2, title=title)
    colors = [LAYER_COLORS["k×k conv"], LAYER_COLORS["1×1 conv"], LAYER_COLORS["fully connected"]]
    for ax, (what, values) in zip(axes, (("parameters", [p for p, _ in costs.values()]),
                                         ("MACs per image", [m for _, m in costs.values()]))):
        ax.barh(range(len(costs)), values, color=colors[:len(costs)])
        for i, value in enumerate(values):
            ax.text(value, i, f" {value:,}", va="center", fontsize=8)
        ax.set_yticks(range(len(costs)), list(costs) if ax is axes[0] else [""] * len(costs))
        ax.set_xlim(0, 1.35 * max(max(values), 1))
        ax.xaxis.set_major_formatter(EngFormatter(sep=" "))  # 2 M, not 0.2 × 1e7
        ax.invert_yaxis()
        _label(ax, what, "", fontsize=9, grid="x")
    return fig


def _layer_kind(name):
    """'k×k conv', '1×1 conv', 'fully connected' or 'other' (BatchNorm) for a layer with parameters (its layer_name)."""
    if name.startswith("Conv2d"):
        return "1×1 conv" if name.startswith("Conv2d 1×1") else "k×k conv"
    return "fully connected" if name.startswith("Linear") else "other"


def _stack(ax, x, boxes, title, width=0.36, height=0.62, gap=0.3):
    """Draw boxes (text, kind) top to bottom at x, with arrows; a box of kind 'frame' opens a dashed group."""
    y, frame, centers = 0.0, None, []
    for text, kind in boxes:
        if kind == "frame":
            frame = (text, y)
            y -= 0.38
        elif kind == "endframe":
            label, top = frame
            ax.add_patch(mpatches.FancyBboxPatch((x - width / 2 - 0.03, y + gap / 2), width + 0.06, top - y - gap / 2,
                                                 boxstyle="round,pad=0.01", fill=False, linestyle="--",
                                                 edgecolor="#444444"))
            ax.text(x - width / 2 - 0.02, top - 0.17, label, ha="left", va="center", fontsize=9, style="italic")
        else:
            ax.add_patch(mpatches.FancyBboxPatch((x - width / 2, y - height), width, height, boxstyle="round,pad=0.02",
                                                 facecolor=LAYER_COLORS.get(kind, "#FFFFFF"),
                                                 alpha=0.35 if kind != "io" else 0.0, edgecolor="#333333"))
            ax.text(x, y - height / 2, text, ha="center", va="center", fontsize=9)
            centers.append((y, y - height))
            y -= height + gap
    for (_, bottom), (top, _) in zip(centers, centers[1:]):
        ax.annotate("", xy=(x, top + 0.02), xytext=(x, bottom - 0.02), arrowprops=dict(arrowstyle="->", color="#333"))
    ax.text(x, 0.35, title, ha="center", va="bottom", fontsize=12, weight="bold")
    return y


def draw_vgg_vs_nin():
    """VGG block and net (left) beside NiN block and net (right), drawn with matplotlib patches (lesson 02)."""
    conv3 = ("3×3 conv, padding 1 + ReLU", "k×k conv")
    fc = ("fully connected 4096 + ReLU + dropout", "fully connected")
    one = ("1×1 conv + ReLU", "1×1 conv")
    vgg = [("input image", "io"), ("VGG block  (× n)", "frame"), conv3, conv3, ("2×2 max pooling, stride 2", "pooling"),
           ("", "endframe"), fc, fc, ("fully connected → classes", "fully connected"), ("class scores", "io")]
    nin = [("input image", "io"), ("NiN block  (× 3)", "frame"), ("k×k conv + ReLU  (k = 11, 5, 3)", "k×k conv"),
           one, one, ("3×3 max pool, stride 2", "pooling"), ("", "endframe"), ("dropout 0.5", "other"),
           ("last NiN block", "frame"), ("3×3 conv → classes + ReLU", "k×k conv"), one, one, ("", "endframe"),
           ("global average pooling", "pooling"), ("class scores", "io")]
    fig, ax = _figure((9, 9), 1, 1)
    low = min(_stack(ax, 0.25, vgg, "VGG"), _stack(ax, 0.75, nin, "NiN"))
    handles = [mpatches.Patch(facecolor=c, alpha=0.35, edgecolor="#333333", label=k)
               for k, c in LAYER_COLORS.items() if k != "other"]
    ax.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, -0.04))
    ax.set(xlim=(0, 1), ylim=(low - 0.3, 0.9), title="VGG vs NiN: blocks and heads (data flows top to bottom)")
    ax.axis("off")
    return fig


def parameter_shares(nets, title="parameters of each net", mark=None):
    """{label: nin_parameter_breakdown} as stacked bars of layers, in millions and in %; ``mark``: bold (lesson 02)."""
    if not nets:
        raise checks.refuse("parameter_shares needs at least one net's parameter breakdown")
    fig, axes = _figure((12.4, 1.0 + 0.95 * len(nets)), 1, 2, title=title, sharey=True)
    for ax, share in zip(axes, (False, True)):
        for y, b in enumerate(nets.values()):
            sizes = np.array([100 * n / b["total"] if share else n / 1e6 for _, _, n, _ in b["rows"]])
            lefts = np.cumsum(sizes) - sizes
            bars = ax.barh(y, sizes, left=lefts, color=[LAYER_COLORS[_layer_kind(r[1])] for r in b["rows"]],
                           edgecolor="#333333", linewidth=0.5)
            for bar, left, size, (_, name, n, part) in zip(bars, lefts, sizes, b["rows"]):
                if part == "head":
                    bar.set_hatch("//")
                if share and 4 * n >= b["total"]:  # name the layers holding at least 25 % (room for the name)
                    ax.text(left + size / 2, y, f"{name}\n{n / b['total']:.0%}", ha="center", va="center",
                            fontsize=8, bbox=dict(facecolor="white", alpha=0.8, edgecolor="none", pad=1))
            if not share:
                ax.text(sizes.sum(), y, f" {b['total']:,}", va="center", fontsize=8)
        ax.set(xlim=(0, 100 if share else 1.25 * max(b["total"] for b in nets.values()) / 1e6),
               xlabel="share of the net's parameters (%)" if share else "parameters (millions, linear scale)")
    axes[0].set_yticks(range(len(nets)), list(nets))
    for label in axes[0].get_yticklabels():
        label.set_fontweight("bold" if label.get_text() == mark else "normal")
    axes[0].invert_yaxis()
    handles = [mpatches.Patch(facecolor=LAYER_COLORS[k], edgecolor="#333333", label=k)
               for k in ("k×k conv", "1×1 conv", "fully connected")]
    handles.append(mpatches.Patch(facecolor="white", edgecolor="#333333", hatch="//", label="head"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
    return fig


# Lessons 00 and 05: curves that grow while a net trains (d2l's Animator)
def in_notebook():
    """True inside a Jupyter kernel (where a figure can be updated in place), False in a script or a terminal."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it; a script need not have it at all
    return ipython is not None and getattr(ipython.get_ipython(), "kernel", None) is not None


class LiveCurves:
    """Curves redrawn in place while a net trains: ``add`` points, then ``draw`` (lessons 00, 05; d2l's Animator);
    ``past``: earlier runs as [(label, {name: (xs, ys)})], drawn faded and dotted beneath, one colour a run."""

    def __init__(self, names=("train loss", "train acc", "test acc"), *, title="training curves", xlabel="epoch",
                 ylabel="loss (nats) / accuracy (fraction)", xlim=None, ylim=None, figsize=(5.0, 3.4), show="auto",
                 min_interval=0.0, into=None, dpi=100, styles=CURVE_STYLES, colors=CURVE_COLORS):
        if not names:
            raise checks.refuse("LiveCurves needs at least one curve name, e.g. ('train loss', 'test acc')")
        self.points = {name: ([], []) for name in names}
        self.title, self.xlabel, self.ylabel, self.xlim, self.ylim = title, xlabel, ylabel, xlim, ylim
        self.figsize, self.styles, self.colors = figsize, tuple(styles), tuple(colors)
        self.show = in_notebook() if checks.auto_flag("show", show) == "auto" else show
        self.min_interval, self.into, self.dpi = min_interval, into, dpi
        self._handle, self._last_draw, self.past = None, -np.inf, []

    names = property(lambda self: tuple(self.points), doc="The curves' names, in the order they are drawn.")

    def add_curve(self, name):
        """Add an empty curve ``name`` (drawn in the next style and colour); a curve that is there stays as it is."""
        self.points.setdefault(name, ([], []))

    def add(self, x, values):
        """Append one point per named value at ``x`` (e.g. ``add(1.4, {'train loss': 0.61})``); None is skipped."""
        for name, value in values.items():
            if name not in self.points:
                raise checks.refuse(f"curve {name!r} is not one of {', '.join(map(repr, self.names))}")
            if value is not None:
                self.points[name][0].append(float(x))
                self.points[name][1].append(float(value))

    @property
    def figure(self):
        """A new figure of every point added so far (not pyplot's: it is shown only where it is put)."""
        fig = Figure(figsize=self.figsize, layout="constrained")
        ax = fig.subplots()
        for (label, curves), color in zip(self.past, PAST_COLORS):
            for j, (xs, ys) in enumerate(curves.values()):
                ax.plot(xs, ys, ":", color=color, alpha=0.7, marker="x", markersize=4, label=None if j else label)
        for i, (name, (xs, ys)) in enumerate(self.points.items()):
            ax.plot(xs, ys, self.styles[i % len(self.styles)], color=self.colors[i % len(self.colors)],
                    marker="o" if len(xs) <= 12 else None, markersize=3, label=name)
        ax.set(xlim=self.xlim, ylim=self.ylim)
        _label(ax, self.xlabel, self.ylabel, self.title, legend=8)
        return fig

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def draw(self, force=False):
        """Redraw into ``into`` (an ipywidgets.Image) or a notebook's output, at most once in ``min_interval`` s."""
        now = time.perf_counter()
        if not force and now - self._last_draw < self.min_interval:
            return False
        self._last_draw = now
        if self.into is not None:
            self.into.value = self._repr_png_()
        elif self.show:
            from IPython.display import display
            if self._handle is None:  # IPython shows the curves through _repr_png_
                self._handle = display(self, display_id=True)
            else:
                self._handle.update(self)
        return True


# Lesson 05: training history, confusion matrix, misclassified images
def _loss_and_accuracy(ax_loss, ax_acc, accuracy):
    """Label and give legends to a per-epoch training-loss panel and an ``accuracy`` panel (lessons 00, 05)."""
    ax_acc.set_ylim(0, 1)
    _label(ax_loss, "epoch", "loss (nats, cross-entropy)", "training loss", legend=8)
    _label(ax_acc, "epoch", f"{accuracy} (fraction correct)", accuracy, legend=8)


def history_curves(history, title="training curves", batch_points=None):
    """Loss and train/test accuracy per epoch of a ``train.History``; ``batch_points`` add batch losses (lesson 05)."""
    epochs = list(getattr(history, "epochs", history))
    fig, (ax_loss, ax_acc) = _figure((8.4, 3.2), 1, 2, title=title, sharex=True)
    xs = [e["epoch"] for e in epochs]
    if batch_points:
        ax_loss.plot(*zip(*batch_points), "-", color="#9ecae1", linewidth=1, label="train loss (batches)")
    ax_loss.plot(xs, [e["loss"] for e in epochs], "o-", color=CURVE_COLORS[0], label="train loss (epoch)")
    ax_acc.plot(xs, [e["train_acc"] for e in epochs], "o--", color=CURVE_COLORS[1], label="train acc")
    tests = [(e["epoch"], e["test_acc"]) for e in epochs if e.get("test_acc") is not None]
    if tests:
        ax_acc.plot(*zip(*tests), "o-", color=CURVE_COLORS[2], label="test acc")
    ax_loss.set_xlim(0, max(xs + [batch_points[-1][0] if batch_points else 1, 1]) + 0.2)  # both panels (shared x)
    _loss_and_accuracy(ax_loss, ax_acc, "accuracy")
    return fig


def record_curves(runs, title=None):
    """Recorded runs of a recipe (``records.runs``): loss and test accuracy per epoch by seed (lessons 00, 05)."""
    if not runs:
        raise checks.refuse("record_curves needs at least one recorded run")
    m = runs[0]["machine"]
    title = title or f"recorded: the {runs[0]['preset']['name']} preset on {m.get('device')}, {m['date'][:10]}"
    fig, (ax_loss, ax_acc) = _figure((8.4, 3.2), 1, 2, title=title)
    for i, run in enumerate(runs):
        epochs = [e for e in run["history"]["epochs"] if not e.get("partial")]
        for ax, key in ((ax_loss, "loss"), (ax_acc, "test_acc")):
            ax.plot([e["epoch"] for e in epochs], [e[key] for e in epochs], "o-", label=f"seed {run['seed']}",
                    color=CURVE_COLORS[i % len(CURVE_COLORS)], markersize=3)
    _loss_and_accuracy(ax_loss, ax_acc, "test accuracy")
    return fig


def confusion_matrix_plot(counts, class_names=None, title="confusion matrix (test set)", normalize=True):
    """A confusion matrix as a heat map: rows true, columns predicted, coloured by row fraction (lesson 05)."""
    counts = _as_array(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise checks.refuse(f"a confusion matrix must be square, got shape {counts.shape}")
    n = counts.shape[0]  # a matrix not of Fashion-MNIST's ten classes has its classes numbered by default
    class_names = _names([str(i) for i in range(n)] if class_names is None and n != 10 else class_names, n)
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    fig, ax = _figure((6.4, 5.6), 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class" if normalize else "images (count)")
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "#222222")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    _label(ax, "predicted class", "true class", f"{title}: accuracy {accuracy:.3f} on {int(counts.sum()):,} images",
           grid=None)
    return fig


def prediction_counts(counts, class_names=None, title="predicted classes"):
    """How often each class is predicted on some test images, one bar a class; a class never predicted (a dead class,
    lesson 05) is a red 0, named in the title."""
    counts = _as_array(counts).astype(int)
    if counts.ndim != 1 or counts.sum() < 1:
        raise checks.refuse(f"prediction counts must be one count per class, at least one image; got {counts}")
    class_names, never = _names(class_names, len(counts)), np.flatnonzero(counts == 0)
    fig, ax = _figure((4.2, 3.4), 1, 1)
    ax.barh(range(len(counts)), counts, color="#4C72B0")
    ax.axvline(counts.sum() / len(counts), color="#555555", ls=":", lw=1, label="an even share")
    for i in never:
        ax.text(0, i, " 0", color="#b00020", va="center", fontweight="bold", fontsize=8)
    ax.set_yticks(range(len(counts)), class_names, fontsize=8)
    for i in never:
        ax.get_yticklabels()[i].set_color("#b00020")
    ax.set_xlim(0, counts.max() * 1.08)
    ax.invert_yaxis()
    named = f" ({', '.join(class_names[i] for i in never)})" if len(never) <= 4 else ""  # more: the red bars say
    said = f"{len(never)} of {len(counts)} classes never predicted{named}" if len(never) else "every class predicted"
    title = textwrap.fill(f"{title}: {said}, on {counts.sum():,} test images", 56, break_on_hyphens=False)
    _label(ax, "test images predicted as the class", None, title, fontsize=9, grid="x", legend=7)
    return fig


def misclassified_grid(images, labels, preds, class_names=None, max_images=16, ncols=8,
                       title="misclassified test images"):
    """The first ``max_images`` images whose prediction is wrong, titled 'true → predicted' (lesson 05)."""
    class_names = data.CLASS_NAMES if class_names is None else class_names
    labels, preds = torch.as_tensor(labels).long(), torch.as_tensor(preds).long()
    wrong = (labels != preds).nonzero().flatten()[:max_images].tolist()
    fig, axes = _grid(max(len(wrong), 1), max(1, min(ncols, len(wrong))), (1.35, 1.6), (0.3, 0.6))
    for ax, i in zip(axes, wrong):
        ax.imshow(_as_array(images[i], image=True), cmap="gray_r")
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"{class_names[labels[i]]}\n→ {class_names[preds[i]]}", fontsize=7, color="#b00020")
    if not wrong:
        axes[0].axis("off")
        axes[0].text(0.5, 0.5, "no misclassified image", ha="center", va="center")
    fig.suptitle(f"{title} (true → predicted; 28×28 pixels each)", fontsize=10)
    return fig


def _offsets(n):
    """Where ``n`` points of one group sit beside its centre, so that equal values stay apart (lesson 06)."""
    return np.linspace(-0.18, 0.18, n) if n > 1 else np.zeros(1)


def _seed_group(ax, x, values, color):
    """One group of ``seed_spread`` at ``x``: each seed a point, the mean a bar, ± 1 standard deviation (lesson 06)."""
    v = np.asarray([value for value in values if value is not None], dtype=float)
    if v.size == 0:
        return
    mean, std = v.mean(), (v.std(ddof=1) if v.size > 1 else 0.0)
    ax.bar(x, mean, width=0.6, color=color, alpha=0.25, edgecolor=color)
    ax.errorbar(x, mean, yerr=std, color="#222222", capsize=6, lw=1.5, zorder=3)
    ax.scatter(x + _offsets(v.size), v, color=color, edgecolor="#222222", s=30, zorder=4)
    ax.annotate(f"{mean:.3f}±{std:.3f}", (x, max(v.max(), mean + std)), xytext=(0, 5), textcoords="offset points",
                ha="center", va="bottom", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8), zorder=5)


def _chance(ax, chance, right):
    """A dashed line at the ``chance`` level (0.1: a guess among ten classes), labelled at x = ``right``."""
    ax.axhline(chance, ls="--", color="#888888", lw=1)
    ax.text(right, chance, "chance", ha="right", va="bottom", fontsize=8, color="#666666")


def seed_spread(panels, title="results over seeds", ylabel="test accuracy (fraction)", chance=None, panel_width=None):
    """Every seed as a point, the mean as a bar, ± one standard deviation: {title: [(label, values)]} (lesson 06)."""
    if not panels or any(not groups for groups in panels.values()):
        raise checks.refuse("seed_spread needs at least one panel, each with at least one (label, values) group")
    width = panel_width or max(3.2, 1.15 * max(len(groups) for groups in panels.values()) + 1.2)
    fig, axes = _figure((width * len(panels), 3.9), 1, len(panels), squeeze=False)
    for ax, (name, groups) in zip(axes[0], panels.items()):
        label_y = ylabel.get(name, "value") if isinstance(ylabel, dict) else ylabel
        for i, (label, values) in enumerate(groups):
            _seed_group(ax, i, values, SEED_COLORS[i % len(SEED_COLORS)])
        if chance is not None and label_y.split(" (")[0].endswith("accuracy") and "−" not in label_y:
            _chance(ax, chance, len(groups) - 0.5)
        ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
        ax.set(xlim=(-0.6, len(groups) - 0.4), ymargin=0.12)
        _label(ax, "configuration", label_y, name, grid="y")
    fig.suptitle(f"{title}\npoints: one per seed · bar: mean · whisker: ± 1 standard deviation", fontsize=10)
    return fig


def runs_beside_seeds(recorded, runs, title, recorded_label="recorded", runs_label="your runs", chance=0.1):
    """Recorded seeds as ``seed_spread`` draws them; ``runs`` [(number, test accuracy)] as diamonds (lesson 06)."""
    fig, ax = _figure((7.0, 4.6), 1, 1)
    _seed_group(ax, 0, recorded, SEED_COLORS[0])
    if runs:
        xs = 1 + _offsets(len(runs))
        ax.scatter(xs, [value for _, value in runs], marker="D", color=SEED_COLORS[1], edgecolor="#222222", s=42,
                   zorder=4, label=runs_label)
        for x, (number, value) in zip(xs, runs):
            ax.annotate(f"#{number}", (x, value), xytext=(5, 0), textcoords="offset points", va="center", fontsize=8)
    else:
        ax.text(1, 0.5, "no run yet:\npress Train", ha="center", va="center", fontsize=9, color="#666666")
    _chance(ax, chance, 1.55)
    ax.set_xticks([0, 1], [recorded_label, runs_label], fontsize=8)
    ax.set(xlim=(-0.6, 1.6), ylim=(0, 1.08))
    _label(ax, "", "test accuracy (fraction)", grid="y")
    lines = [textwrap.fill(line, 100) for line in title.split("\n")]
    fig.suptitle("\n".join(lines + ["●: a recorded seed · bar: their mean ± 1 standard deviation · "
                                    "◆: your run (# as in the table)"]), fontsize=9)
    return fig


# Lessons 03-04: output sizes, adaptive pooling windows, class maps, receptive fields, translation
def _staircase(ax, sizes, sides, min_size=None, mark=None, title=None):
    """Each stage's output side against the input side as steps (log scale), the too-small sizes shaded."""
    for name, values in sides.items():
        ax.step(sizes, [np.nan if v is None else v for v in values], where="post", label=name)
    if min_size is not None and min_size > sizes[0]:
        ax.axvspan(sizes[0], min_size, color="#C44E52", alpha=0.12,
                   label=f"too small: below {min_size}×{min_size} a layer gets no output")
    if mark is not None:
        ax.axvline(mark, color="#333333", linestyle="--", linewidth=1, label=f"{mark}×{mark} input")
    ax.set_yscale("log", base=2)
    top = max(v for values in sides.values() for v in values if v is not None)
    ticks = [2 ** i for i in range(int(np.log2(top)) + 1)]
    ax.set_yticks(ticks, [str(t) for t in ticks])
    _label(ax, "input side (pixels)", "output side (pixels, log scale)", title, fontsize="large", grid=None)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")


def size_staircase(sizes, sides, min_size=None, mark=None, title="map side after each stage of the net"):
    """Each stage's output side against the input side, as steps: the floor in the formula (lesson 03)."""
    if not sizes or not sides or any(len(v) != len(sizes) for v in sides.values()):
        raise checks.refuse("size_staircase needs input sizes and, per stage, one output side per input size")
    fig, ax = _figure((8.5, 4.6), 1, 1)
    _staircase(ax, sizes, sides, min_size, mark, title)
    return fig


def receptive_field_view(image, influence, rows, cols, stair, title):
    """Where one output cell looks (lesson 03): the image with the cell's field (``rows``, ``cols``: first and last
    pixel, padding outside the image), the ``influence`` of each pixel, and ``stair`` = (sizes, sides, min, mark)."""
    image, influence = _as_array(image, image=True), _as_array(influence)
    n = image.shape[0]
    fig, axes = _figure((13.5, 4.8), 1, 3, title=title, width_ratios=[1, 1, 1.25], layout=None,
                        gridspec_kw=dict(left=0.05, right=0.99, top=0.8, bottom=0.11, wspace=0.22))
    (r0, r1), (c0, c1) = rows, cols
    pad = sum(max(0, -a) + max(0, b - (n - 1)) for a, b in (rows, cols))
    for ax, heat in zip(axes[:2], (None, influence)):
        if heat is None:
            _show_image(ax, image)
        else:
            ax.imshow(heat, cmap="inferno", extent=(-0.5, n - 0.5, n - 0.5, -0.5))
            _label(ax, "x (pixels)", "y (pixels)", grid=None)
        ax.add_patch(mpatches.Rectangle((-0.5, -0.5), n, n, fill=False, edgecolor="#333333", linestyle=":"))
        ax.add_patch(mpatches.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, facecolor="#DD8452",
                                        alpha=0.15 if heat is None else 0, edgecolor="#DD8452", linewidth=2,
                                        hatch="//" if pad else None))
        ax.set(xlim=(min(-0.5, c0 - 1.5), max(n - 0.5, c1 + 1.5)), ylim=(max(n - 0.5, r1 + 1.5), min(-0.5, r0 - 1.5)))
    axes[0].set_title(f"its field: rows {r0}…{r1}, columns {c0}…{c1}" + ("\n(hatched: reaches into the zero "
                      "padding)" if pad else ""), fontsize=9)
    axes[1].set_title("influence of each pixel on the cell (all weights equal):\nstrongest at the centre, "
                      "0 outside the field", fontsize=9)
    _staircase(axes[2], *stair, title="this layer's output side against the input side")
    return fig


def adaptive_windows_figure(size, out, title=None):
    """The windows adaptive pooling uses to take ``size`` pixels to ``out`` cells, and their overlap (lesson 04)."""
    windows = shapes.adaptive_windows(checks.whole_number("size", size, 1), checks.whole_number("out", out, 1))
    cover = np.array([sum(s <= i < e for s, e in windows) for i in range(size)])
    fig, (ax, bx) = _figure((8.5, 2.8 + 0.42 * out), 2, 1, sharex=True, height_ratios=[max(out, 2), 2])
    for i, (s, e) in enumerate(windows):
        ax.barh(i, e - s, left=s - 0.5, height=0.7, color=plt.cm.tab10(i % 10), alpha=0.55, edgecolor="#333333")
        ax.text(s - 0.5 + (e - s) / 2, i, f"[{s}, {e})  {e - s} px", ha="center", va="center", fontsize=8)
    ax.set(ylim=(out - 0.5, -0.5))
    ax.set_yticks(range(out), [f"cell {i}" for i in range(out)] if out <= 16 else None)
    _label(ax, "", "output cell i", title or f"adaptive pooling of {size} pixels to {out} cells: "
           f"start = ⌊i·{size}/{out}⌋, end = ⌈(i+1)·{size}/{out}⌉", fontsize="large", grid="x")
    bx.bar(np.arange(size), cover, width=0.9, color=["#C44E52" if c > 1 else "#8172B2" for c in cover])
    bx.set(yticks=range(0, int(cover.max()) + 1), xlim=(-0.5, size - 0.5))
    _label(bx, "input position (pixel index)", "windows per pixel", "red: pixels in two windows (the windows "
           "overlap where size/out is not a whole number)", fontsize=9, grid=None)
    return fig


def class_maps(net, X):
    """(maps, logits): the last block's class maps and the scores GAP pools from them, in eval mode (lesson 04)."""
    layers = list(net) if isinstance(net, torch.nn.Sequential) else []
    gap = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.AdaptiveAvgPool2d)]
    if not gap:
        raise checks.refuse("class_maps needs an nn.Sequential with an AdaptiveAvgPool2d layer (NiN's global "
                            "average pooling); this net has none")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            maps = net[:gap[-1]](X)
            return maps, net[gap[-1]:](maps)
    finally:
        net.train(was_training)


def _show_image(ax, image, heat=None, vmax=None, centres=None):
    """A labelled grey image, optionally a class map ``heat`` laid over it (lesson 04); returns the top image."""
    image = _as_array(image, image=True)
    frame = (-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5)  # pixel centres at whole coordinates
    top = ax.imshow(image, cmap="gray_r", extent=frame)
    _label(ax, "x (pixels)", "y (pixels)", grid=None)
    if heat is not None:  # map cell i centred at first + stride·i for ``centres`` = (first, stride), else stretched
        heat, extent = _as_array(heat), frame
        if centres is not None:
            first, stride = centres
            extent = (first - stride / 2, first + stride * (heat.shape[1] - 0.5),
                      first + stride * (heat.shape[0] - 0.5), first - stride / 2)
        top = ax.imshow(heat, cmap="inferno", alpha=0.55, vmin=0, vmax=vmax, interpolation="bilinear", extent=extent)
        ax.set(xlim=frame[:2], ylim=frame[2:])  # the image's frame, whatever part of it the map covers
    return top


def confidence_maps_figure(image, maps, logits, label=None, class_names=None, title=None, centres=None,
                           reference=None, reference_label="unshifted"):
    """One image with its predicted class's map over it, then every class map with its score (lesson 04);
    ``reference`` (one score per class, e.g. the image's before a shift) adds a row of bars: scores against it."""
    maps, logits = _as_array(maps), _as_array(logits)
    if maps.ndim != 3 or logits.shape != (maps.shape[0],):
        raise checks.refuse(f"maps must be (classes, h, w) with one logit per class; got {maps.shape} and "
                            f"{logits.shape}")
    names = _names(class_names, maps.shape[0])
    probs, pred, vmax = torch.from_numpy(logits).softmax(-1), int(logits.argmax()), float(maps.max()) or 1.0
    ncols, nrows, extra = 5, -(-maps.shape[0] // 5), reference is not None
    height = 2.6 * nrows + 1.4 + 2.2 * extra
    fig = _figure((3.8 + 2.0 * ncols, height), title=title or "class confidence maps: the last NiN block's output, "
                  "one map per class; global average pooling turns each map into its class score", layout=None)
    grid = fig.add_gridspec(nrows + extra, ncols + 2, height_ratios=[1] * nrows + [0.8] * extra, left=0.05,
                            right=0.99, top=1 - 1.3 / height, bottom=0.5 / height, wspace=0.25, hspace=0.45)
    big = fig.add_subplot(grid[:nrows, :2])
    im = _show_image(big, image, maps[pred], vmax, centres)
    truth = "" if label is None else f"\ntrue: {names[int(label)]}"
    big.set_title(f"predicted: {names[pred]} (p = {probs[pred]:.2f}){truth}\nits map over the image", fontsize=10)
    for c in range(maps.shape[0]):
        ax = fig.add_subplot(grid[c // ncols, 2 + c % ncols])
        ax.imshow(maps[c], cmap="inferno", vmin=0, vmax=vmax)
        mark = " ✓" if label is not None and c == int(label) else ""
        ax.set_title(f"{names[c]}{mark}\nmean {logits[c]:.2f}, p = {probs[c]:.2f}", fontsize=8,
                     color="#C44E52" if c == pred else "black", weight="bold" if c == pred else "normal")
        ax.set(xticks=[], yticks=[])
        if c % ncols == 0:
            ax.set_ylabel(f"{maps.shape[1]}×{maps.shape[2]} map cells", fontsize=7)
        if c == pred:
            ax.spines[:].set(edgecolor="#C44E52", linewidth=2)
    fig.colorbar(im, ax=big, location="bottom", shrink=0.9, label="class map value (a.u.; its mean is the class score)")
    if extra:
        ax = fig.add_subplot(grid[nrows, :])
        ax.bar(range(len(names)), logits, color=["#C44E52" if c == pred else "#4C72B0" for c in range(len(names))],
               label="class score (mean of its map)")
        ax.plot(range(len(names)), _as_array(reference), "k_", markersize=22, markeredgewidth=2,
                label=f"{reference_label}")
        ax.set_xticks(range(len(names)), names, fontsize=8)
        _label(ax, "", "score", grid="y", legend=8)
    return fig


def confidence_overview(images, maps, logits, labels=None, class_names=None, ncols=4,
                        title="each image with the map of the class the net predicts", centres=None):
    """A grid of images, each with its predicted class's map laid over it (see ``_show_image``; lesson 04)."""
    images, maps, logits = _as_array(images), _as_array(maps), _as_array(logits)
    n = len(images)
    if n == 0 or maps.ndim != 4 or len(maps) != n or logits.shape != maps.shape[:2]:
        raise checks.refuse(f"need N images with (N, classes, h, w) maps and (N, classes) logits; got "
                            f"{images.shape}, {maps.shape} and {logits.shape}")
    names = _names(class_names, maps.shape[1])
    fig, axes = _grid(n, ncols, (2.7, 2.95), (0, 0.6), title)
    probs, vmax = torch.from_numpy(logits).softmax(-1), float(maps.max()) or 1.0
    for k, ax in zip(range(n), axes):
        pred = int(logits[k].argmax())
        im = _show_image(ax, images[k], maps[k, pred], vmax, centres)
        truth = "" if labels is None else f"\ntrue: {names[int(labels[k])]}"
        ax.set_title(f"pred: {names[pred]} ({probs[k, pred]:.2f}){truth}", fontsize=9,
                     color="black" if labels is None or int(labels[k]) == pred else "#C44E52")
    fig.colorbar(im, ax=axes, shrink=0.6, label="predicted class's map value (a.u.)")
    return fig


def receptive_field_figure(panels, cells=None, title="what one cell of the class maps sees"):
    """Cell centres and fields on {title: (image, map_side, receptive_field, stride, first_centre)} (lesson 04)."""
    if not panels:
        raise checks.refuse("receptive_field_figure needs at least one panel (image, map_side, receptive_field, "
                            "stride, first_centre)")
    fig, axes = _figure((5.2 * len(panels), 5.6), 1, len(panels), title=title, squeeze=False)
    colors = ("#C44E52", "#4C72B0", "#55A868", "#8172B2")
    for ax, (name, (image, side, field, stride, first)) in zip(axes[0], panels.items()):
        for what, value in (("map_side", side), ("receptive_field", field), ("stride", stride)):
            checks.whole_number(what, value, 1)
        checks.number("first_centre", first)
        h, w = _show_image(ax, image).get_array().shape
        ax.add_patch(mpatches.Rectangle((-0.5, -0.5), w, h, fill=False, edgecolor="#333333", linestyle="--",
                                        label=f"the {w}×{h}-pixel image"))
        centres = first + stride * np.arange(side)
        gx, gy = np.meshgrid(centres, centres)
        ax.scatter(gx.ravel(), gy.ravel(), s=14, color="#DD8452", zorder=3, label=f"centres of the {side}×{side} cells")
        for i, (row, col) in enumerate(cells if cells is not None else [(0, 0), (side - 1, side - 1)]):
            checks.whole_number("cell row", row, 0, side - 1)
            checks.whole_number("cell column", col, 0, side - 1)
            color = colors[i % len(colors)]
            ax.add_patch(mpatches.Rectangle((centres[col] - field / 2, centres[row] - field / 2), field, field,
                                            facecolor=color, alpha=0.18, edgecolor=color, linewidth=2,
                                            label=f"receptive field of cell ({row}, {col})"))
        low = min(-0.5, centres[0] - field / 2) - 1
        high = max(max(w, h) - 0.5, centres[-1] + field / 2) + 1
        ax.set(xlim=(low, high), ylim=(high, low), aspect="equal")
        ax.set_title(f"{name}\n{side}×{side} map; each cell sees {field}×{field} px, cells {stride} px apart", size=10)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.85)
    return fig


def shift_scores_figure(shifts, scores, label=None, fractions=None, class_names=None,
                        title="class scores of one image as it moves sideways"):
    """One image's class scores against a sideways shift, plus optional ``fractions`` per shift (lesson 04)."""
    shifts, scores = list(shifts), _as_array(scores)
    if not shifts or scores.ndim != 2 or scores.shape[0] != len(shifts):
        raise checks.refuse(f"scores must be (shifts, classes) with one row per shift; got {scores.shape} for "
                            f"{len(shifts)} shifts")
    names = _names(class_names, scores.shape[1])
    fractions = dict(fractions or {})
    for name, values in fractions.items():
        if len(values) != len(shifts):
            raise checks.refuse(f"fraction {name!r} has {len(values)} values for {len(shifts)} shifts; give one per "
                                "shift")
    fig, (axes,) = _figure((11.0 if fractions else 6.4, 4.0), 1, 2 if fractions else 1, title=title, squeeze=False)
    colors = plt.cm.tab10(np.arange(scores.shape[1]) % 10)
    for c in range(scores.shape[1]):
        true = label is not None and c == int(label)
        axes[0].plot(shifts, scores[:, c], "o-" if true else ".-", color=colors[c], linewidth=2.6 if true else 1.0,
                     markersize=5 if true else 3, label=f"{names[c]}{' (true)' if true else ''}")
    xlabel = "shift to the right (pixels; negative: to the left)"
    _label(axes[0], xlabel, "class score (mean of its map, a.u.)",
           "one test image: the highest line is the predicted class")
    axes[0].legend(fontsize=7, ncol=2)
    for name, values in fractions.items():
        axes[1].plot(shifts, _as_array(values), "o-", label=name)
    if fractions:
        axes[1].set_ylim(0, 1.02)
        _label(axes[1], xlabel, "fraction of the test images", "many test images, each shifted the same way", legend=8)
    for ax in axes:
        ax.axvline(0, color="#888888", linewidth=1, linestyle=":")
    return fig
