"""Plots for the lessons: image grids, feature maps, block drawings, parameter bars, curves (viz).

Every function takes data as arguments and returns a matplotlib figure; every figure has a title,
axis labels and units. Importing this module does not import ipywidgets.
"""
import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import torch

from . import checks, data, shapes


# ---------------------------------------------------------------------------------------------
# Lessons 01-02: feature maps, block drawings, per-layer parameter bars

# one colour per kind of layer, shared by the block drawing and the parameter bars
LAYER_COLORS = {"k×k conv": "#4C72B0", "1×1 conv": "#55A868", "fully connected": "#C44E52",
                "pooling": "#8172B2", "other": "#BBBBBB"}


def _figure(figsize):
    """A new figure for every plot of this module: a pyplot figure in the main thread (a notebook shows it when
    the cell ends), a plain ``matplotlib.figure.Figure`` in any other thread (the training panel's thread)."""
    import threading

    if threading.current_thread() is threading.main_thread():
        return plt.figure(figsize=figsize, layout="constrained")
    from matplotlib.figure import Figure
    return Figure(figsize=figsize, layout="constrained")


def _softmax(logits):
    """Probabilities from class scores (a NumPy vector or rows of them)."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _as_array(m):
    if isinstance(m, torch.Tensor):
        m = m.detach().float().cpu().numpy()
    return np.asarray(m, dtype=float)


def feature_maps(maps, titles=None, title="feature maps", ncols=None, cmap=None, cbar_label="activation (a.u.)",
                 mark=None, size=2.6):
    """Plot 2-D maps side by side with colour bars, axes in pixels (lesson 01); returns the figure.

    Maps with negative values get a diverging colour map centred on 0; ``mark=(row, col)`` outlines one pixel.
    """
    maps = [_as_array(m) for m in maps]
    if not maps or any(m.ndim != 2 for m in maps):
        raise checks.refuse(f"feature_maps needs a non-empty list of 2-D maps, got shapes {[m.shape for m in maps]}")
    if titles is not None and len(titles) != len(maps):
        raise checks.refuse(f"{len(titles)} titles for {len(maps)} maps; give one title per map")
    ncols = ncols or len(maps)
    nrows = -(-len(maps) // ncols)
    fig = _figure((size * ncols + 0.6, size * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(maps):
            ax.axis("off")
            continue
        m = maps[i]
        if cmap is not None:
            style = dict(cmap=cmap)
        elif m.min() < 0:
            v = float(np.abs(m).max()) or 1.0
            style = dict(cmap="RdBu_r", vmin=-v, vmax=v)
        else:
            style = dict(cmap="viridis")
        im = ax.imshow(m, **style)
        fig.colorbar(im, ax=ax, shrink=0.8, label=cbar_label)
        ax.set_title(titles[i] if titles is not None else f"map {i}", fontsize=9)
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
        if mark is not None:
            r, c = mark
            ax.add_patch(mpatches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    fig.suptitle(title)
    return fig


def _layer_kind(name):
    """'k×k conv', '1×1 conv', 'fully connected', 'pooling' or 'other' for a shapes.describe() name."""
    if name.startswith("Conv2d 1×1"):
        return "1×1 conv"
    if name.startswith("Conv2d"):
        return "k×k conv"
    if name.startswith("Linear"):
        return "fully connected"
    if "Pool" in name:
        return "pooling"
    return "other"


def _stack(ax, x, boxes, title, width=0.36, height=0.62, gap=0.3):
    """Draw boxes (text, kind) top to bottom at x, with arrows; a box of kind 'frame' opens a dashed group."""
    y, frame = 0.0, None
    centers = []
    for text, kind in boxes:
        if kind == "frame":
            frame = (text, y)
            y -= 0.38
            continue
        if kind == "endframe":
            label, top = frame
            ax.add_patch(mpatches.FancyBboxPatch((x - width / 2 - 0.03, y + gap / 2), width + 0.06, top - y - gap / 2,
                                                 boxstyle="round,pad=0.01", fill=False, linestyle="--",
                                                 edgecolor="#444444"))
            ax.text(x - width / 2 - 0.02, top - 0.17, label, ha="left", va="center", fontsize=9, style="italic")
            frame = None
            continue
        color = LAYER_COLORS.get(kind, "#FFFFFF")
        ax.add_patch(mpatches.FancyBboxPatch((x - width / 2, y - height), width, height, boxstyle="round,pad=0.02",
                                             facecolor=color, alpha=0.35 if kind != "io" else 0.0,
                                             edgecolor="#333333"))
        ax.text(x, y - height / 2, text, ha="center", va="center", fontsize=9)
        centers.append((y, y - height))
        y -= height + gap
    for (_, bottom), (top, _) in zip(centers, centers[1:]):
        ax.annotate("", xy=(x, top + 0.02), xytext=(x, bottom - 0.02),
                    arrowprops=dict(arrowstyle="->", color="#333333"))
    ax.text(x, 0.35, title, ha="center", va="bottom", fontsize=12, weight="bold")
    return y


def draw_vgg_vs_nin():
    """VGG block and net (left) beside NiN block and net (right), drawn with matplotlib patches (lesson 02)."""
    vgg = [("input image", "io"),
           ("VGG block  (× n)", "frame"),
           ("3×3 conv, padding 1 + ReLU", "k×k conv"),
           ("3×3 conv, padding 1 + ReLU", "k×k conv"),
           ("2×2 max pooling, stride 2", "pooling"),
           ("", "endframe"),
           ("fully connected 4096 + ReLU + dropout", "fully connected"),
           ("fully connected 4096 + ReLU + dropout", "fully connected"),
           ("fully connected → classes", "fully connected"),
           ("class scores", "io")]
    nin = [("input image", "io"),
           ("NiN block  (× 3)", "frame"),
           ("k×k conv + ReLU  (k = 11, 5, 3)", "k×k conv"),
           ("1×1 conv + ReLU", "1×1 conv"),
           ("1×1 conv + ReLU", "1×1 conv"),
           ("", "endframe"),
           ("3×3 max pool, stride 2, after each", "pooling"),
           ("dropout 0.5", "other"),
           ("last NiN block", "frame"),
           ("3×3 conv → classes + ReLU", "k×k conv"),
           ("1×1 conv + ReLU", "1×1 conv"),
           ("1×1 conv + ReLU", "1×1 conv"),
           ("", "endframe"),
           ("global average pooling", "pooling"),
           ("class scores", "io")]
    fig = _figure((9, 9))
    ax = fig.subplots()
    low = min(_stack(ax, 0.25, vgg, "VGG"), _stack(ax, 0.75, nin, "NiN"))
    handles = [mpatches.Patch(facecolor=c, alpha=0.35, edgecolor="#333333", label=k)
               for k, c in LAYER_COLORS.items() if k != "other"]
    ax.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, -0.04))
    ax.set_xlim(0, 1)
    ax.set_ylim(low - 0.3, 0.9)
    ax.axis("off")
    ax.set_title("VGG vs NiN: blocks and heads (data flows top to bottom)")
    return fig


def parameter_bars(panels, title="parameters per layer", xmax=None):
    """Horizontal bars of parameters per layer on a log scale, one panel per net (lesson 02); returns the figure.

    ``panels`` maps a panel title to rows ``(path, name, parameters[, part])`` as given by
    ``shapes.layer_parameters`` or ``shapes.nin_parameter_breakdown(...)['rows']``; 'head' rows are hatched.
    ``xmax`` fixes the right end of the axis (a panel that redraws keeps its scale).
    """
    if not panels:
        raise checks.refuse("parameter_bars needs at least one panel of rows")
    most = max(len(rows) for rows in panels.values())
    fig = _figure((6.2 * len(panels), 0.34 * most + 1.8))
    axes = fig.subplots(1, len(panels), squeeze=False, sharex=True)
    largest = max(r[2] for rows in panels.values() for r in rows)
    for ax, (name, rows) in zip(axes[0], panels.items()):
        labels = [f"{r[0]}  {r[1]}" for r in rows]
        values = [r[2] for r in rows]
        kinds = [_layer_kind(r[1]) for r in rows]
        ys = np.arange(len(rows))
        bars = ax.barh(ys, values, color=[LAYER_COLORS[k] for k in kinds], edgecolor="#333333")
        for bar, r in zip(bars, rows):
            if len(r) > 3 and r[3] == "head":
                bar.set_hatch("//")
        for y, v in zip(ys, values):
            ax.text(v * 1.15, y, f"{v:,}", va="center", fontsize=8)
        ax.set_yticks(ys, labels, fontsize=8)
        ax.set_ylim(most - 0.5, -0.5)
        ax.set_xscale("log")
        ax.set_xlim(10, xmax or largest * 40)
        ax.set_xlabel("parameters (count, log scale)")
        ax.set_ylabel("layer (path in the net, forward order)")
        ax.set_title(f"{name}: {sum(values):,} parameters", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    handles = [mpatches.Patch(facecolor=LAYER_COLORS[k], edgecolor="#333333", label=k)
               for k in ("k×k conv", "1×1 conv", "fully connected")]
    handles.append(mpatches.Patch(facecolor="white", edgecolor="#333333", hatch="//", label="head (after the trunk)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# Lessons 00 and 05: curves that grow while a net trains (d2l's Animator)

def in_notebook():
    """True inside a Jupyter kernel (where a figure can be updated in place), False in a script or a terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveCurves:
    """Training curves redrawn in place while a net trains (lessons 00 and 05; d2l's ``Animator``).

    ``add(x, {name: value})`` appends points (``None`` values are skipped); ``draw()`` redraws.
    In a notebook the figure is one output that each ``draw()`` replaces (an IPython display
    handle, so text printed before or after it stays); with ``into`` (an ``ipywidgets.Image``, the
    training panel's) each draw sets that widget's PNG instead; elsewhere nothing is shown (no GUI
    window) and ``figure`` holds the picture. ``min_interval`` (seconds) lets ``draw()`` skip redraws
    that come too soon, so plotting does not slow a fast GPU run; ``draw(force=True)`` always draws.
    """

    STYLES = ("-", "--", "-.", ":")
    COLORS = ("#1f77b4", "#9467bd", "#2ca02c", "#d62728")

    def __init__(self, names=("train loss", "train acc", "test acc"), *, title="training curves",
                 xlabel="epoch", ylabel="loss (nats) / accuracy (fraction)", xlim=None, ylim=None,
                 figsize=(5.0, 3.4), show="auto", min_interval=0.0, into=None, dpi=100):
        if not names:
            raise checks.refuse("LiveCurves needs at least one curve name, e.g. ('train loss', 'test acc')")
        checks.auto_flag("show", show)
        self.names = tuple(names)
        self.points = {name: ([], []) for name in self.names}
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.xlim, self.ylim, self.figsize = xlim, ylim, figsize
        self.show = in_notebook() if show == "auto" else show
        self.min_interval, self.into, self.dpi = min_interval, into, dpi
        self.draws = 0
        self._figure = None
        self._figure_points = None
        self._handle = None
        self._last_draw = None

    def add(self, x, values):
        """Append one point per named value at ``x`` (e.g. ``add(1.4, {'train loss': 0.61})``)."""
        for name, value in values.items():
            if name not in self.points:
                raise checks.refuse(f"curve {name!r} is not one of {', '.join(map(repr, self.names))}")
            if value is not None:
                xs, ys = self.points[name]
                xs.append(float(x))
                ys.append(float(value))

    def _render(self):
        from matplotlib.figure import Figure

        fig = Figure(figsize=self.figsize, layout="constrained")
        ax = fig.subplots()
        for i, name in enumerate(self.names):
            xs, ys = self.points[name]
            marker = "o" if len(xs) <= 12 else None
            ax.plot(xs, ys, self.STYLES[i % len(self.STYLES)], color=self.COLORS[i % len(self.COLORS)],
                    marker=marker, markersize=3, label=name)
        if self.xlim is not None:
            ax.set_xlim(*self.xlim)
        if self.ylim is not None:
            ax.set_ylim(*self.ylim)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        ax.set_title(self.title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return fig

    @property
    def figure(self):
        """The figure with every point added so far (drawn now if needed)."""
        if self._figure is None or self._figure_points != self._count():
            self._figure = self._render()
            self._figure_points = self._count()
        return self._figure

    def _count(self):
        return tuple(len(xs) for xs, _ in self.points.values())

    def _png(self):
        import io

        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()

    def _repr_png_(self):
        return self._png()

    def draw(self, force=False):
        """Redraw (in a notebook: replace the one output in place); returns True if it drew."""
        import time

        now = time.perf_counter()
        if not force and self._last_draw is not None and now - self._last_draw < self.min_interval:
            return False
        self._last_draw = now
        self.draws += 1
        if self.into is not None:
            self.into.value = self._png()
            return True
        if not self.show:
            self._figure = None  # drawn lazily when someone asks for ``figure``
            return True
        from IPython.display import Image, display

        image = Image(data=self._png(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)
        return True


# ---------------------------------------------------------------------------------------------
# Lesson 05: training history, confusion matrix, misclassified images

def history_curves(history, title="training curves", batch_points=None):
    """Loss and accuracy per epoch from a ``train.History`` (or its list of epoch dicts) (lesson 05).

    Left: training loss; right: train and test accuracy. ``batch_points`` (optional list of
    (epoch as a fraction, loss)) adds batch losses within epochs. Returns the figure.
    """
    epochs = list(getattr(history, "epochs", history))
    fig = _figure((8.4, 3.2))
    ax_loss, ax_acc = fig.subplots(1, 2)
    xs = [e["epoch"] for e in epochs]
    if batch_points:
        bx, by = zip(*batch_points)
        ax_loss.plot(bx, by, "-", color="#9ecae1", linewidth=1, label="train loss (batches)")
    ax_loss.plot(xs, [e["loss"] for e in epochs], "o-", color="#1f77b4", label="train loss (epoch)")
    ax_acc.plot(xs, [e["train_acc"] for e in epochs], "o--", color="#9467bd", label="train acc")
    tests = [(e["epoch"], e["test_acc"]) for e in epochs if e.get("test_acc") is not None]
    if tests:
        ax_acc.plot(*zip(*tests), "o-", color="#2ca02c", label="test acc")
    right = max(xs + [bx[-1] if batch_points else 1, 1])
    for ax, ylabel in ((ax_loss, "loss (nats, cross-entropy)"), (ax_acc, "accuracy (fraction correct)")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, right + 0.2)
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    ax_acc.set_ylim(0, 1)
    ax_loss.set_title("training loss", fontsize=10)
    ax_acc.set_title("accuracy", fontsize=10)
    fig.suptitle(title)
    return fig


def record_curves(runs, title=None):
    """Recorded runs of one recipe drawn together (lessons 00, 05): training loss and test accuracy per epoch, one
    line per seed; ``runs`` are record dicts (``records.runs``). The title names where and when they ran."""
    if not runs:
        raise checks.refuse("record_curves needs at least one recorded run")
    fig = _figure((8.4, 3.2))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, run in enumerate(runs):
        epochs = [e for e in run["history"]["epochs"] if not e.get("partial")]
        xs = [e["epoch"] for e in epochs]
        color = LiveCurves.COLORS[i % len(LiveCurves.COLORS)]
        ax_loss.plot(xs, [e["loss"] for e in epochs], "o-", color=color, markersize=3, label=f"seed {run['seed']}")
        ax_acc.plot(xs, [e["test_acc"] for e in epochs], "o-", color=color, markersize=3, label=f"seed {run['seed']}")
    for ax, ylabel, name in ((ax_loss, "loss (nats, cross-entropy)", "training loss"),
                             (ax_acc, "test accuracy (fraction correct)", "test accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_acc.set_ylim(0, 1)
    m = runs[0]["machine"]
    fig.suptitle(title or f"recorded: the {runs[0]['preset']['name']} preset on {m.get('device')}, {m['date'][:10]}")
    return fig


def confusion_matrix_plot(counts, class_names=None, title="confusion matrix (test set)", normalize=True):
    """A confusion matrix as a heat map: rows = true class, columns = predicted class (lesson 05).

    ``normalize=True`` colours each row by the fraction of that class (the numbers printed are counts).
    """
    counts = _as_array(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise checks.refuse(f"a confusion matrix must be square, got shape {counts.shape}")
    n = counts.shape[0]
    if class_names is None:
        class_names = data.CLASS_NAMES if n == len(data.CLASS_NAMES) else [str(i) for i in range(n)]
    rows = counts.sum(axis=1, keepdims=True)
    shown = counts / np.maximum(rows, 1) if normalize else counts
    fig = _figure((6.4, 5.6))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class" if normalize else "images (count)")
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "#222222")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(f"{title}: accuracy {accuracy:.3f} on {int(counts.sum()):,} images", fontsize=10)
    return fig


def misclassified_grid(images, labels, preds, class_names=None, max_images=16, ncols=8,
                       title="misclassified test images"):
    """The first ``max_images`` images whose prediction is wrong, titled 'true → predicted' (lesson 05).

    images: (N, 28, 28) or (N, 1, H, W); labels, preds: (N,) class indices.
    """
    if class_names is None:
        class_names = data.CLASS_NAMES
    images = torch.as_tensor(images)
    if images.dim() == 4:
        images = images[:, 0]
    labels, preds = torch.as_tensor(labels).long(), torch.as_tensor(preds).long()
    wrong = (labels != preds).nonzero().flatten()[:max_images]
    k = len(wrong)
    ncols = max(1, min(ncols, k))
    nrows = max(1, -(-k // ncols))
    fig = _figure((1.35 * ncols + 0.3, 1.6 * nrows + 0.6))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).flat
    for ax, i in zip(axes, list(wrong) + [None] * (nrows * ncols - k)):
        ax.set_xticks([])
        ax.set_yticks([])
        if i is None:
            ax.axis("off")
            continue
        ax.imshow(_as_array(images[i]), cmap="gray_r")
        ax.set_title(f"{class_names[labels[i]]}\n→ {class_names[preds[i]]}", fontsize=7, color="#b00020")
    if k == 0:
        axes_list = fig.axes
        axes_list[0].text(0.5, 0.5, "no misclassified image", ha="center", va="center")
    fig.suptitle(f"{title} (true → predicted; 28×28 pixels each)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# Lesson 06: results over several seeds (mean ± spread, every seed as a point)

def seed_spread(panels, title="results over seeds", ylabel="test accuracy (fraction)", chance=None,
                panel_width=None):
    """Every seed as a point, the mean as a bar and ± one standard deviation as an error bar (lesson 06).

    ``panels`` maps a panel title to groups ``[(label, values), ...]`` (one group per configuration);
    ``ylabel`` is one label or a dict per panel title; ``chance`` draws a dashed line at that value
    (e.g. 0.1 for ten classes) on accuracy panels (or give a dict per panel title). Returns the figure.
    """
    if not panels or any(not groups for groups in panels.values()):
        raise checks.refuse("seed_spread needs at least one panel, each with at least one (label, values) group")
    most = max(len(groups) for groups in panels.values())
    width = panel_width or max(3.2, 1.15 * most + 1.2)
    fig = _figure((width * len(panels), 3.9))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860")
    for ax, (name, groups) in zip(axes, panels.items()):
        label_y = ylabel.get(name, "value") if isinstance(ylabel, dict) else ylabel
        for i, (label, values) in enumerate(groups):
            v = np.asarray([x for x in values if x is not None], dtype=float)
            if v.size == 0:
                continue
            mean = v.mean()
            std = v.std(ddof=1) if v.size > 1 else 0.0
            color = colors[i % len(colors)]
            ax.bar(i, mean, width=0.6, color=color, alpha=0.25, edgecolor=color)
            ax.errorbar(i, mean, yerr=std, color="#222222", capsize=6, lw=1.5, zorder=3)
            offsets = np.linspace(-0.18, 0.18, v.size) if v.size > 1 else np.zeros(1)
            ax.scatter(i + offsets, v, color=color, edgecolor="#222222", s=30, zorder=4)
            ax.annotate(f"{mean:.3f}±{std:.3f}", (i, max(v.max(), mean + std)), xytext=(0, 5), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8), zorder=5)
        level = chance.get(name) if isinstance(chance, dict) else chance
        is_accuracy = label_y.split(" (")[0].endswith("accuracy") and "−" not in label_y
        if level is not None and (isinstance(chance, dict) or is_accuracy):
            ax.axhline(level, ls="--", color="#888888", lw=1)
            ax.text(len(groups) - 0.5, level, "chance", ha="right", va="bottom", fontsize=8, color="#666666")
        ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel(label_y)
        ax.set_xlabel("configuration")
        ax.margins(y=0.12)
        ax.set_title(name, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title}\npoints: one per seed · bar: mean · whisker: ± 1 standard deviation", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------
# Lessons 03-04: output sizes, adaptive pooling windows, class confidence maps

def size_staircase(sizes, sides, min_size=None, mark=None, title="map side after each stage of the net"):
    """Output side of each stage against the input side, as steps (the floor in the formula) (lesson 03).

    ``sides`` maps a stage name to one side per input size (None where the input is too small);
    ``min_size`` shades the sizes the net rejects; ``mark`` draws a dashed line at one input size.
    Returns the figure.
    """
    if not sizes or not sides or any(len(v) != len(sizes) for v in sides.values()):
        raise checks.refuse("size_staircase needs input sizes and, per stage, one output side per input size")
    fig = _figure((8.5, 4.6))
    ax = fig.subplots()
    for name, values in sides.items():
        ys = [np.nan if v is None else v for v in values]
        ax.step(sizes, ys, where="post", label=name)
    if min_size is not None and min_size > sizes[0]:
        ax.axvspan(sizes[0], min_size, color="#C44E52", alpha=0.12,
                   label=f"too small: below {min_size}×{min_size} a layer gets no output")
    if mark is not None:
        ax.axvline(mark, color="#333333", linestyle="--", linewidth=1, label=f"{mark}×{mark} input")
    ax.set_yscale("log", base=2)
    top = max(v for values in sides.values() for v in values if v is not None)
    ticks = [2 ** i for i in range(int(np.log2(top)) + 1)]
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("input side (pixels)")
    ax.set_ylabel("output side (pixels, log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def adaptive_windows_figure(size, out, title=None):
    """The windows adaptive pooling uses to take ``size`` pixels to ``out`` cells, and how often each pixel is
    covered (lesson 04): start = floor(i·size/out), end = ceil((i+1)·size/out). Returns the figure."""
    checks.whole_number("size", size, 1)
    checks.whole_number("out", out, 1)
    windows = shapes.adaptive_windows(size, out)
    cover = np.zeros(size, dtype=int)
    for s, e in windows:
        cover[s:e] += 1
    fig = _figure((8.5, 1.2 + 0.42 * out + 1.6))
    ax, bx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [max(out, 2), 2]})
    colors = plt.cm.tab10(np.arange(out) % 10)
    for i, (s, e) in enumerate(windows):
        ax.barh(i, e - s, left=s - 0.5, height=0.7, color=colors[i], alpha=0.55, edgecolor="#333333")
        ax.text(s - 0.5 + (e - s) / 2, i, f"[{s}, {e})  {e - s} px", ha="center", va="center", fontsize=8)
    ax.set_ylim(out - 0.5, -0.5)
    ax.set_yticks(range(out), [f"cell {i}" for i in range(out)] if out <= 16 else None)
    ax.set_ylabel("output cell i")
    ax.set_title(title or f"adaptive pooling of {size} pixels to {out} cells: "
                          f"start = ⌊i·{size}/{out}⌋, end = ⌈(i+1)·{size}/{out}⌉")
    ax.grid(axis="x", alpha=0.3)
    bx.bar(np.arange(size), cover, width=0.9, color=["#C44E52" if c > 1 else "#8172B2" for c in cover])
    bx.set_ylabel("windows per pixel")
    bx.set_xlabel("input position (pixel index)")
    bx.set_yticks(range(0, int(cover.max()) + 1))
    bx.set_xlim(-0.5, size - 0.5)
    bx.set_title("red: pixels in two windows (the windows overlap where size/out is not a whole number)",
                 fontsize=9)
    return fig


def class_maps(net, X):
    """The maps a NiN's last block gives, one per class, and the class scores pooled from them (lesson 04).

    ``net`` is an nn.Sequential with an AdaptiveAvgPool2d layer (NiN's global average pooling); the maps are
    the output of everything before it. Runs in eval mode without gradients; returns (maps, logits).
    """
    layers = list(net) if isinstance(net, torch.nn.Sequential) else []
    gap = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.AdaptiveAvgPool2d)]
    if not gap:
        raise checks.refuse("class_maps needs an nn.Sequential with an AdaptiveAvgPool2d layer (NiN's global "
                         "average pooling); this net has none")
    i = gap[-1]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            maps = net[:i](X)
            logits = net[i:](maps)
    finally:
        net.train(was_training)
    return maps, logits


def _overlay(ax, image, heat, vmax, alpha=0.55):
    """Draw a grey image and a class map stretched over it (each map cell covers a block of pixels)."""
    image, heat = _as_array(image), _as_array(heat)
    h, w = image.shape
    ax.imshow(image, cmap="gray_r", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    im = ax.imshow(heat, cmap="inferno", alpha=alpha, vmin=0, vmax=vmax or 1.0, interpolation="bilinear",
                   extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    return im


def _names(class_names, n):
    if class_names is None:
        class_names = data.CLASS_NAMES
    if len(class_names) != n:
        raise checks.refuse(f"{len(class_names)} class names for {n} class maps; give one name per class")
    return class_names


def confidence_maps_figure(image, maps, logits, label=None, class_names=None, title=None):
    """One image: the predicted class's map over the image, then all class maps with their scores (lesson 04).

    ``image`` is (H, W) or (1, H, W); ``maps`` (C, h, w) and ``logits`` (C,) come from ``class_maps``.
    """
    image = _as_array(image).reshape(_as_array(image).shape[-2:])
    maps, logits = _as_array(maps), _as_array(logits)
    if maps.ndim != 3 or logits.shape != (maps.shape[0],):
        raise checks.refuse(f"maps must be (classes, h, w) with one logit per class; got {maps.shape} and {logits.shape}")
    names = _names(class_names, maps.shape[0])
    probs = _softmax(logits)
    pred = int(logits.argmax())
    vmax = float(maps.max()) or 1.0
    ncols = 5
    nrows = -(-maps.shape[0] // ncols)
    fig = _figure((3.8 + 2.0 * ncols, 2.6 * nrows + 1.0))
    grid = fig.add_gridspec(nrows, ncols + 2)
    big = fig.add_subplot(grid[:, :2])
    im = _overlay(big, image, maps[pred], vmax)
    truth = "" if label is None else f"\ntrue: {names[int(label)]}"
    big.set_title(f"predicted: {names[pred]} (p = {probs[pred]:.2f}){truth}\nits map over the image", fontsize=10)
    for c in range(maps.shape[0]):
        ax = fig.add_subplot(grid[c // ncols, 2 + c % ncols])
        ax.imshow(maps[c], cmap="inferno", vmin=0, vmax=vmax)
        mark = " ✓" if label is not None and c == int(label) else ""
        ax.set_title(f"{names[c]}{mark}\nmean {logits[c]:.2f}, p = {probs[c]:.2f}", fontsize=8,
                     color="#C44E52" if c == pred else "black", weight="bold" if c == pred else "normal")
        ax.set_xlabel("map x (cells)", fontsize=7)
        ax.set_ylabel("map y (cells)", fontsize=7)
        ax.set_xticks(range(maps.shape[2]))
        ax.set_yticks(range(maps.shape[1]))
        ax.tick_params(labelsize=6)
        if c == pred:
            for side in ax.spines.values():
                side.set_edgecolor("#C44E52")
                side.set_linewidth(2)
    fig.colorbar(im, ax=big, location="bottom", shrink=0.9, label="class map value (a.u.; its mean is the class score)")
    fig.suptitle(title or "class confidence maps: the last NiN block's output, one map per class; "
                          "global average pooling turns each map into its class score")
    return fig


def confidence_overview(images, maps, logits, labels=None, class_names=None, ncols=4,
                        title="each image with the map of the class the net predicts"):
    """A grid of images, each with its predicted class's map laid over it (lesson 04); returns the figure."""
    images, maps, logits = _as_array(images), _as_array(maps), _as_array(logits)
    n = len(images)
    if n == 0 or maps.ndim != 4 or len(maps) != n or logits.shape != maps.shape[:2]:
        raise checks.refuse(f"need N images with (N, classes, h, w) maps and (N, classes) logits; got "
                         f"{images.shape}, {maps.shape} and {logits.shape}")
    names = _names(class_names, maps.shape[1])
    nrows = -(-n // ncols)
    fig = _figure((2.7 * ncols, 2.95 * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    vmax = float(maps.max()) or 1.0
    im = None
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        pred = int(logits[k].argmax())
        p = _softmax(logits[k])
        im = _overlay(ax, images[k].reshape(images[k].shape[-2:]), maps[k, pred], vmax)
        ok = labels is None or int(labels[k]) == pred
        truth = "" if labels is None else f"\ntrue: {names[int(labels[k])]}"
        ax.set_title(f"pred: {names[pred]} ({p[pred]:.2f}){truth}", fontsize=9,
                     color="black" if ok else "#C44E52")
    fig.colorbar(im, ax=axes, shrink=0.6, label="predicted class's map value (a.u.)")
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# Lesson 04: translation invariance and the receptive field of the class maps

def receptive_field_figure(panels, cells=None, title="what one cell of the class maps sees"):
    """Each panel's image with the centres of its class-map cells and the receptive fields of some cells (lesson 04).

    ``panels`` maps a panel title to ``(image, map_side, receptive_field, stride, first_centre)``: the (H, W) image,
    the side of the class maps in cells and, in input pixels along one axis, the side of one cell's receptive field,
    the distance between neighbouring cells and the centre of cell 0. ``cells`` lists the (row, col) cells whose
    fields are drawn (default: the two opposite corners). Returns the figure.
    """
    if not panels:
        raise checks.refuse("receptive_field_figure needs at least one panel (image, map_side, receptive_field, "
                            "stride, first_centre)")
    fig = _figure((5.2 * len(panels), 5.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = ("#C44E52", "#4C72B0", "#55A868", "#8172B2")
    for ax, (name, (image, side, field, stride, first)) in zip(axes, panels.items()):
        checks.whole_number("map_side", side, 1)
        checks.whole_number("receptive_field", field, 1)
        checks.whole_number("stride", stride, 1)
        checks.number("first_centre", first)
        image = _as_array(image)
        image = image.reshape(image.shape[-2:])
        h, w = image.shape
        ax.imshow(image, cmap="gray_r", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        ax.add_patch(mpatches.Rectangle((-0.5, -0.5), w, h, fill=False, edgecolor="#333333", linestyle="--",
                                        label=f"the {w}×{h}-pixel image"))
        centres = first + stride * np.arange(side)
        gx, gy = np.meshgrid(centres, centres)
        ax.scatter(gx.ravel(), gy.ravel(), s=14, color="#DD8452", zorder=3, label=f"centres of the {side}×{side} cells")
        shown = cells if cells is not None else [(0, 0), (side - 1, side - 1)]
        for i, (row, col) in enumerate(shown):
            checks.whole_number("cell row", row, 0, side - 1)
            checks.whole_number("cell column", col, 0, side - 1)
            cx, cy = centres[col], centres[row]
            ax.add_patch(mpatches.Rectangle((cx - field / 2, cy - field / 2), field, field,  # pixels are unit squares
                                            facecolor=colors[i % len(colors)], alpha=0.18,
                                            edgecolor=colors[i % len(colors)], linewidth=2,
                                            label=f"receptive field of cell ({row}, {col})"))
        low = min(-0.5, centres[0] - field / 2) - 1
        high = max(max(w, h) - 0.5, centres[-1] + field / 2) + 1
        ax.set_xlim(low, high)
        ax.set_ylim(high, low)
        ax.set_aspect("equal")
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
        ax.set_title(f"{name}\n{side}×{side} map; each cell sees {field}×{field} px, cells {stride} px apart",
                     fontsize=10)
        ax.legend(fontsize=7, loc="lower right", framealpha=0.85)
    fig.suptitle(title)
    return fig


def shift_scores_figure(shifts, scores, label=None, fractions=None, class_names=None,
                        title="class scores of one image as it moves sideways"):
    """One image's class scores against a horizontal shift of it, and fractions of test images per shift (lesson 04).

    ``shifts``: S shifts in pixels (negative: to the left); ``scores``: (S, classes), the net's scores for each
    shifted copy; ``label``: its true class (drawn thick); ``fractions``: {name: S values in [0, 1]} for a second
    panel, e.g. the test accuracy at each shift. Returns the figure.
    """
    shifts, scores = list(shifts), _as_array(scores)
    if not shifts or scores.ndim != 2 or scores.shape[0] != len(shifts):
        raise checks.refuse(f"scores must be (shifts, classes) with one row per shift; got {scores.shape} for "
                            f"{len(shifts)} shifts")
    names = _names(class_names, scores.shape[1])
    fractions = dict(fractions or {})
    for name, values in fractions.items():
        if len(values) != len(shifts):
            raise checks.refuse(f"fraction {name!r} has {len(values)} values for {len(shifts)} shifts; give one per shift")
    fig = _figure((11.0 if fractions else 6.4, 4.0))
    axes = fig.subplots(1, 2 if fractions else 1, squeeze=False)[0]
    ax = axes[0]
    colors = plt.cm.tab10(np.arange(scores.shape[1]) % 10)
    for c in range(scores.shape[1]):
        true = label is not None and c == int(label)
        ax.plot(shifts, scores[:, c], "o-" if true else ".-", color=colors[c], linewidth=2.6 if true else 1.0,
                markersize=5 if true else 3, label=f"{names[c]}{' (true)' if true else ''}")
    ax.axvline(0, color="#888888", linewidth=1, linestyle=":")
    ax.set_xlabel("shift to the right (pixels; negative: to the left)")
    ax.set_ylabel("class score (mean of its map, a.u.)")
    ax.set_title("one test image: the highest line is the predicted class", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    if fractions:
        bx = axes[1]
        for name, values in fractions.items():
            bx.plot(shifts, _as_array(values), "o-", label=name)
        bx.axvline(0, color="#888888", linewidth=1, linestyle=":")
        bx.set_ylim(0, 1.02)
        bx.set_xlabel("shift to the right (pixels; negative: to the left)")
        bx.set_ylabel("fraction of the test images")
        bx.set_title("many test images, each shifted the same way", fontsize=10)
        bx.grid(alpha=0.3)
        bx.legend(fontsize=8)
    fig.suptitle(title)
    return fig
