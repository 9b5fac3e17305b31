"""ipywidgets panels over the nin_lib functions (widgets): the only module that imports ipywidgets.

Each panel is thin: its logic is a plain function elsewhere in nin_lib (with unit tests); bad input
is shown in the panel as one sentence, nothing crashes.
"""
import html
import math
import threading

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import HTML, display

from . import checks, experiments, presets, runtime, shapes, train, viz


# ---------------------------------------------------------------------------------------------
# Lessons 01-02: a panel whose result is an ordinary notebook output, the conv-cost and NiN-parameter panels

class ResultPanel:
    """Controls plus result outputs that are ordinary notebook outputs (visible where widgets are not).

    ``render(**values)`` returns a list of things to display (HTML, figures); a ValueError it raises is
    shown in the panel as one red sentence. Displaying the panel shows the controls and renders the
    defaults once, so a non-interactive run (nbval, nbconvert) records the default result.
    """

    def __init__(self, controls, render, rows=None):
        self.controls = dict(controls)
        self.render = render
        rows = rows or [list(self.controls)]
        self.box = W.VBox([W.HBox([self.controls[name] for name in row]) for row in rows])
        self.handles = []
        for control in self.controls.values():
            control.observe(self._changed, names="value")

    def values(self):
        """The controls' current values by name."""
        return {name: control.value for name, control in self.controls.items()}

    def result(self):
        """What the panel shows for the current values: a list of displayable objects."""
        try:
            return list(self.render(**self.values()))
        except ValueError as error:
            return [HTML(f'<p style="color:#b00020"><b>Not possible:</b> {html.escape(str(error))}</p>')]

    def _changed(self, change=None):
        for handle, item in zip(self.handles, self.result()):
            if handle is not None:
                handle.update(item)
            _close(item)

    def _ipython_display_(self):
        display(self.box)
        self.handles = []
        for item in self.result():
            self.handles.append(display(item, display_id=True))
            _close(item)


def _close(item):
    if isinstance(item, plt.Figure):
        plt.close(item)


def _table(rows):
    body = "".join(f'<tr><td style="text-align:left">{html.escape(a)}</td>'
                   f'<td style="text-align:right">{html.escape(b)}</td></tr>' for a, b in rows)
    return f"<table>{body}</table>"


def conv_cost_view(in_channels, out_channels, kernel_size, input_size, stride=1, padding=0):
    """The conv-cost panel's result for one setting: an HTML table (lesson 01)."""
    c = shapes.conv_cost(in_channels, out_channels, kernel_size, input_size, stride, padding)
    one = shapes.conv_cost(in_channels, out_channels, 1, input_size, stride, 0)
    _, h, w = c["output_shape"]
    dense = in_channels * input_size ** 2 * out_channels * h * w + out_channels * h * w
    k = kernel_size
    rows = [("input (channels × height × width)", f"{in_channels} × {input_size} × {input_size}"),
            ("output (channels × height × width)", " × ".join(map(str, c["output_shape"]))),
            ("parameters", f"{c['parameters']:,}  = {in_channels}·{out_channels}·{k}² weights + {out_channels} biases"),
            ("multiply-accumulates (MACs) per image", f"{c['macs']:,}"),
            ("a 1×1 conv, same channels and stride", f"{one['parameters']:,} parameters, {one['macs']:,} MACs"),
            ("a fully connected layer, whole input map → whole output map", f"{dense:,} parameters")]
    return [HTML(_table(rows))]


def conv_cost_panel(in_channels=96, out_channels=96, kernel_size=1, input_size=54, stride=1, padding=0):
    """Sliders for one Conv2d (channels, kernel, stride, padding, input size) showing parameters, MACs and
    output shape (lesson 01)."""
    style = {"description_width": "initial"}
    controls = {
        "in_channels": W.IntSlider(value=in_channels, min=1, max=512, description="c_in", style=style),
        "out_channels": W.IntSlider(value=out_channels, min=1, max=512, description="c_out", style=style),
        "kernel_size": W.IntSlider(value=kernel_size, min=1, max=11, description="kernel size", style=style),
        "input_size": W.IntSlider(value=input_size, min=1, max=224, description="input size (px)", style=style),
        "stride": W.IntSlider(value=stride, min=1, max=4, description="stride", style=style),
        "padding": W.IntSlider(value=padding, min=0, max=5, description="padding", style=style),
    }
    return ResultPanel(controls, conv_cost_view,
                       rows=[["in_channels", "out_channels", "kernel_size"], ["input_size", "stride", "padding"]])


def nin_params_view(head="gap", num_1x1=2, width=1.0, hidden=4096):
    """The NiN-parameter panel's result: a summary table and per-layer bars beside the seed's NiN (lesson 02)."""
    seed = shapes.nin_parameter_breakdown("gap")
    mine = shapes.nin_parameter_breakdown(head, num_1x1=num_1x1, width=width, hidden=hidden)
    name = (f"{'FC head' if head == 'fc' else 'GAP head'}, {num_1x1} × 1×1 conv per block, width {width:g}"
            + (f", {hidden} hidden units" if head == "fc" else ""))
    rows = [("your net", name),
            ("parameters in total", f"{mine['total']:,}  ({mine['total'] / seed['total']:.2f} × the seed's NiN)"),
            ("in the trunk (three NiN blocks)", f"{mine['trunk']:,}"),
            ("in the head", f"{mine['head']:,}  ({mine['head'] / mine['total']:.0%} of the net)"),
            ("the seed's NiN", f"{seed['total']:,}")]
    fig = viz.parameter_bars({"the seed's NiN": seed["rows"], "your net": mine["rows"]},
                             title="parameters per layer, 224×224 input", xmax=1e10)
    return [HTML(_table(rows)), fig]


def nin_params_panel(head="gap", num_1x1=2, width=1.0, hidden=4096):
    """Pick the head (GAP or FC), the number of 1×1 convs, the width and the FC size; see the parameter
    counts and per-layer bars (lesson 02)."""
    style = {"description_width": "initial"}
    controls = {
        "head": W.ToggleButtons(options=[("GAP (NiN)", "gap"), ("FC (AlexNet-style)", "fc")], value=head,
                                description="head", style=style),
        "num_1x1": W.IntSlider(value=num_1x1, min=0, max=4, description="1×1 convs per block", style=style),
        "width": W.FloatSlider(value=width, min=0.25, max=2.0, step=0.25, description="width ×", style=style),
        "hidden": W.Dropdown(options=[256, 512, 1024, 2048, 4096], value=hidden, description="FC hidden units",
                             style=style),
    }
    return ResultPanel(controls, nin_params_view, rows=[["head", "hidden"], ["num_1x1", "width"]])


# ---------------------------------------------------------------------------------------------
# Lessons 03-04: the input-size panel, the adaptive-pooling-windows panel, the class-confidence-map panel

def input_size_view(net, input_size=224, depth="top"):
    """The input-size panel's result (lesson 03): the trace table, or (as a ValueError) why the size does not fit."""
    result = shapes.trace_or_message(net, input_size, depth=depth)
    if isinstance(result, str):
        raise checks.refuse(result)
    maps = [r for r in result if len(r.output_shape) == 4 and "Adaptive" not in r.name]
    last = maps[-1] if maps else result[-1]
    summary = (f"input {input_size}×{input_size}: the last block's maps are "
               f"{last.output_shape[-2]}×{last.output_shape[-1]}; "
               f"{result.params:,} parameters, {result.macs:,} multiply-accumulates per image")
    return [HTML(f"<p>{html.escape(summary)}</p>{result._repr_html_()}")]


def input_size_panel(net=None, input_size=224, depth="top"):
    """A slider for the input side: the layer-by-layer table, or the layer that fails and the smallest size
    that works (lesson 03). ``net`` defaults to the seed's NiN."""
    import torch
    from nin_lib import models
    if net is None:
        with torch.device("meta"):
            net = models.nin()
    style = {"description_width": "initial"}
    controls = {
        "input_size": W.IntSlider(value=input_size, min=1, max=320, description="input side (px)", style=style,
                                  continuous_update=False),
        "depth": W.ToggleButtons(options=[("one row per block", "top"), ("one row per layer", "leaf")], value=depth,
                                 description="rows", style=style),
    }
    return ResultPanel(controls, lambda input_size, depth: input_size_view(net, input_size, depth))


def adaptive_windows_view(size=10, out=4):
    """The adaptive-windows panel's result (lesson 04): the windows as text and as a drawing."""
    fig = viz.adaptive_windows_figure(size, out)  # checks size and out
    windows = shapes.adaptive_windows(size, out)
    widths = sorted({e - s for s, e in windows})
    text = (f"{size} → {out}: windows {', '.join(f'[{s}, {e})' for s, e in windows)}; "
            f"window widths {', '.join(map(str, widths))} pixels"
            + ("; every window has the same width and they do not overlap: an ordinary pooling layer "
               f"(kernel {size // out}, stride {size // out}) does the same" if size % out == 0 else
               "; size/out is not a whole number, so neighbouring windows overlap (and widths can differ)"))
    return [HTML(f"<p>{html.escape(text)}</p>"), fig]


def adaptive_windows_panel(size=10, out=4):
    """Sliders for the input length and the output length of adaptive pooling; see its windows (lesson 04)."""
    style = {"description_width": "initial"}
    controls = {
        "size": W.IntSlider(value=size, min=1, max=40, description="input length (px)", style=style),
        "out": W.IntSlider(value=out, min=1, max=12, description="output length (cells)", style=style),
    }
    return ResultPanel(controls, adaptive_windows_view)


def confidence_maps_view(net, images, labels, index=0, class_names=None):
    """The confidence-map panel's result (lesson 04): one test image with all its class maps."""
    checks.whole_number("image index", index, 0, len(images) - 1)
    X = images[index:index + 1]
    device = next(net.parameters()).device
    maps, logits = viz.class_maps(net, X.to(device))
    fig = viz.confidence_maps_figure(X[0], maps[0], logits[0], label=int(labels[index]), class_names=class_names,
                                     title=f"test image {index}: class confidence maps (one per class) and their means")
    return [fig]


def confidence_maps_panel(net, images, labels, index=0, class_names=None):
    """Pick a test image; see the map of every class and which class wins (lesson 04).

    ``images`` is a float tensor (N, 1, H, W) in [0, 1], ``labels`` (N,)."""
    style = {"description_width": "initial"}
    controls = {"index": W.IntSlider(value=index, min=0, max=len(images) - 1, description="test image",
                                     style=style, continuous_update=False)}
    return ResultPanel(controls, lambda index: confidence_maps_view(net, images, labels, index, class_names))


# ---------------------------------------------------------------------------------------------
# Lessons 05-06: training in a background thread, with Train, Stop, a progress bar and a status line

def _refusal(error):
    return f'<p style="color:#b00020"><b>Not possible:</b> {html.escape(str(error))}</p>'


class BackgroundRun:
    """Train and Stop buttons, a progress bar and a status line over one run in a background thread (lessons 05, 06).

    A panel gives ``start`` the work to do, a function of ``(stop, progress)``: a ``threading.Event`` that Stop
    sets (``fit`` then ends after the current batch and keeps what it trained) and a ``fit`` callback that moves
    the bar. The kernel stays free while it trains; ``wait()`` blocks until the run ends (scripts and tests).
    """

    def __init__(self, on_train, on_batch=None):
        style = {"description_width": "initial"}
        self.stop_event = threading.Event()
        self.thread = None
        self.on_batch = on_batch
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress", style=style,
                                      layout=W.Layout(width="420px"))
        self.status = W.HTML("<p>Choose the settings and press <b>Train</b>.</p>")
        self.train_button.on_click(lambda _: on_train())
        self.stop_button.on_click(self.stop)

    @property
    def running(self):
        return self.thread is not None and self.thread.is_alive()

    def say(self, text):
        self.status.value = text

    def start(self, work, what):
        """Run ``work(stop, progress)`` in a background thread; returns False (and says so) if one is running."""
        if self.running:
            self.say("<p>Already training: press <b>Stop</b> first.</p>")
            return False
        self.stop_event.clear()
        self.progress.value, self.progress.max, self.progress.bar_style = 0, 1, ""
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.say(f"<p><i>preparing {html.escape(what)} …</i></p>")

        def body():
            try:
                work(self.stop_event, _Progress(self))
            finally:
                self.train_button.disabled, self.stop_button.disabled = False, True

        self.thread = threading.Thread(target=body, daemon=True, name="nin-panel-run")
        self.thread.start()
        return True

    def finished(self, history):
        """Colour the bar and say what was trained (after a Stop: the whole epochs and the batches of the last)."""
        self.progress.bar_style = "warning" if history.stopped else "success"
        color = "#b00020" if history.stopped else "#1b5e20"
        self.say(f'<p style="color:{color}">{html.escape(history.summary())}</p>')

    def stop(self, _=None):
        """Ask the run to stop after the current batch (it keeps its net and history)."""
        self.stop_event.set()
        if self.running:
            self.say("<p><i>stopping after this batch …</i></p>")

    def wait(self, timeout=None):
        """Block until the background run ends."""
        if self.thread is not None:
            self.thread.join(timeout)

    @property
    def controls_row(self):
        return W.HBox([self.train_button, self.stop_button, self.progress])


class _Progress(train.Callback):
    """Moves a ``BackgroundRun``'s bar from ``fit``'s callbacks and hands each step to its ``on_batch``."""

    def __init__(self, panel):
        self.panel, self.num_batches = panel, 1

    def on_train_begin(self, info):
        self.num_batches = info["num_batches"] or 1
        self.panel.progress.max = max(1, (info["num_epochs"] - info["start_epoch"]) * self.num_batches)

    def on_batch_end(self, step):
        self.panel.progress.value = min(self.panel.progress.max, self.panel.progress.value + 1)
        if self.panel.on_batch is not None:
            self.panel.on_batch(step)

    def on_epoch_end(self, record, history):
        test = record.get("test_acc")
        self.panel.say(f"<p><i>epoch {record['epoch']}{' (partial)' if record.get('partial') else ''}: loss "
                       f"{record['loss']:.3f}, train acc {record['train_acc']:.3f}, test acc "
                       f"{'n/a' if test is None else format(test, '.3f')}</i></p>")


# ---------------------------------------------------------------------------------------------
# Lesson 05: the training panel

# Which preset value each control shows (the one map between the panel and a preset).
PANEL_FIELDS = ("lr", "num_epochs", "batch_size", "resize", "dropout", "batch_norm", "momentum")
MIN_STEPS = 100        # a preset's settings train at least this many steps, so that even 1,000 images learn
CPU_LIMIT_S = 600      # on a CPU, a run that must take longer than this (presets.cpu_seconds) is refused with the reason


class TrainingPanel:
    """Lesson 05's hyper-parameter panel: pick a preset, change its values, press Train; Stop works
    while it trains (the run is in a background thread); live curves and a progress bar show how it
    goes. Afterwards ``panel.net`` is the trained net and ``panel.history`` its ``train.History``.

    The values a preset fills in always train to a net that has learned: with few training images the
    epochs go up so that the run has at least ``MIN_STEPS`` steps, and each epoch's test pass uses as many test
    images as there are training images (``test_subset='auto'``). Bad settings (a batch size of 0, an image
    too small for the net, a missing device, a run too slow or too big for this machine) are shown in the
    panel as one sentence; nothing is started then.
    """

    SUBSETS = (("1,000", 1000), ("5,000", 5000), ("10,000", 10000), ("30,000", 30000), ("all 60,000", None))

    def __init__(self, fmnist, *, preset="quick", device="auto", subset=10000, test_subset="auto",
                 redraw_seconds=1.0):
        self.fmnist, self.test_subset = fmnist, test_subset
        self.net, self.history, self.run, self.error = None, None, None, None
        style = {"description_width": "initial"}
        subsets = [v for _, v in self.SUBSETS]
        self.controls = {
            "preset": W.Dropdown(options=presets.names(), value=preset, description="preset", style=style),
            # a log slider over 1e-4 … 1: the exponents are min/max, so 0.1 is shown as 0.1
            "lr": W.FloatLogSlider(value=0.1, base=10, min=-4, max=0, step=0.1, readout_format=".3g",
                                   description="learning rate", style=style, continuous_update=False),
            "num_epochs": W.IntSlider(value=1, min=1, max=50, description="epochs", style=style),
            "batch_size": W.IntText(value=128, description="batch size", style=style, layout=W.Layout(width="160px")),
            "resize": W.IntText(value=28, description="image size (px)", style=style, layout=W.Layout(width="180px")),
            "dropout": W.FloatSlider(value=0.5, min=0.0, max=0.9, step=0.05, description="dropout", style=style),
            "batch_norm": W.Checkbox(value=False, description="BatchNorm", style=style),
            "momentum": W.FloatSlider(value=0.0, min=0.0, max=0.99, step=0.01, description="momentum", style=style),
            "device": W.Dropdown(options=list(runtime.DEVICES), value=device, description="device", style=style),
            "subset": W.Dropdown(options=list(self.SUBSETS), value=checks.choice("subset", subset, tuple(subsets)),
                                 description="training images", style=style),
        }
        self.background = BackgroundRun(self.train, on_batch=self._batch)
        self.curves = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.live = None
        self.redraw_seconds = redraw_seconds
        self.controls["preset"].observe(lambda change: self.load_preset(change["new"]), names="value")
        self.controls["subset"].observe(lambda change: self._fit_epochs(), names="value")
        self.load_preset(preset)
        c = self.controls
        self.widget = W.VBox([
            W.HBox([c["preset"], c["device"], c["subset"]]),
            W.HBox([c["lr"], c["num_epochs"]]),
            W.HBox([c["batch_size"], c["resize"], c["dropout"]]),
            W.HBox([c["batch_norm"], c["momentum"]]),
            self.background.controls_row, self.background.status, self.curves])

    # the background run's parts, under the names the lesson uses
    train_button = property(lambda self: self.background.train_button)
    stop_button = property(lambda self: self.background.stop_button)
    progress = property(lambda self: self.background.progress)
    status = property(lambda self: self.background.status)
    thread = property(lambda self: self.background.thread)
    running = property(lambda self: self.background.running)

    # -- settings ---------------------------------------------------------------------------------

    def preset_values(self, name):
        """The control values preset ``name`` fills in for the chosen number of training images."""
        p = presets.get_preset(name)
        values = {field: (p.image_size() if field == "resize" else getattr(p, field)) for field in PANEL_FIELDS}
        images = self.controls["subset"].value or len(self.fmnist.train_labels)
        steps_per_epoch = math.ceil(images / p.batch_size)
        values["num_epochs"] = min(50, max(p.num_epochs, math.ceil(MIN_STEPS / steps_per_epoch)))
        return values

    def load_preset(self, name):
        """Put a preset's values into the controls."""
        for field, value in self.preset_values(name).items():
            self.controls[field].value = value

    def _fit_epochs(self):
        """A new number of training images: the preset's epochs for it (at least ``MIN_STEPS`` steps)."""
        self.controls["num_epochs"].value = self.preset_values(self.controls["preset"].value)["num_epochs"]

    def settings(self):
        """The preset the controls describe (validated: a bad value raises ValueError)."""
        v = {name: control.value for name, control in self.controls.items()}
        base = presets.get_preset(v["preset"])
        changes = {field: v[field] for field in PANEL_FIELDS}
        changes.update(lr=float(v["lr"]), dropout=float(v["dropout"]), momentum=float(v["momentum"]),
                       batch_norm=bool(v["batch_norm"]),
                       resize=None if base.resize is None and v["resize"] == 28 else v["resize"])
        return base.with_overrides(**changes, nesterov=base.nesterov and changes["momentum"] > 0, device=v["device"],
                                   subset=v["subset"], test_subset=self._test_subset(v["subset"]))

    def _test_subset(self, subset):
        """The test images each epoch's test pass uses: as many as the training images (at least 1,000, at most all
        10,000) unless the panel was given a number, so that a small run is not mostly test passes."""
        if self.test_subset != "auto":
            return self.test_subset
        total = len(self.fmnist.test_labels)
        return None if subset is None or subset >= total else max(min(1000, total), subset)

    def check(self, p):
        """Raise ValueError if ``p`` cannot run here: a missing device, too little memory, or on a CPU a run
        estimated to take more than ``CPU_LIMIT_S`` (the sentence gives the estimate and what to do)."""
        device = runtime.pick_device(p.device)
        presets.check_memory(p, device)
        if device.type == "cpu":
            images = (p.subset or len(self.fmnist.train_labels)) * p.num_epochs
            seconds = presets.cpu_seconds(p, images)
            if seconds > CPU_LIMIT_S:
                raise presets.too_slow(p, images, seconds, CPU_LIMIT_S)

    # -- buttons ----------------------------------------------------------------------------------

    def train(self, _=None):
        """Start training with the current settings in a background thread; returns True if it started."""
        try:
            preset = self.settings()
            self.check(preset)
        except ValueError as error:
            self.error = str(error)
            self.background.say(_refusal(error))
            return False
        self.error = None
        self.live = viz.LiveCurves(("train loss (batches)", "train loss", "train acc", "test acc"), into=self.curves,
                                   title=f"{preset.name}: training curves", min_interval=self.redraw_seconds, dpi=80,
                                   xlim=(0, preset.num_epochs), ylim=(0, 2.5))
        return self.background.start(lambda stop, progress: self._run(preset, stop, progress), preset.name)

    def stop(self, _=None):
        """Ask the run to stop after the current batch (it keeps its net and history)."""
        self.background.stop()

    def wait(self, timeout=None):
        """Block until the background run ends; returns the history (or None)."""
        self.background.wait(timeout)
        return self.history

    def _run(self, preset, stop, progress):
        try:
            self.run = presets.build_run(preset, data=self.fmnist)
            self.net = self.run.net
            self.background.say(f"<p><i>training {html.escape(preset.name)} on "
                                f"{html.escape(runtime.describe_device(self.run.device))} …</i></p>")
            self.history = self.run.fit(callbacks=[progress, self._epoch], stop=stop, progress=False, verbose=False)
            self.live.draw(force=True)
            self.background.finished(self.history)
        except ValueError as error:  # a value only the run itself can check
            self.error = str(error)
            self.background.say(_refusal(error))
        except Exception as error:  # never a traceback in the panel
            self.error = f"{type(error).__name__}: {error}"
            self.background.say(f'<p style="color:#b00020"><b>Training failed:</b> {html.escape(self.error)}</p>')

    def _batch(self, step):
        if step.batch % max(1, (step.num_batches or 10) // 10) == 0:
            self.live.add(step.epoch - 1 + step.batch / (step.num_batches or step.batch), {"train loss (batches)": step.loss})
            self.live.draw()

    def _epoch(self, record, history):
        x = record["epoch"] - 1 + (record["batches"] / record["num_batches"] if record.get("partial") else 1)
        self.live.add(x, {"train loss": record["loss"], "train acc": record["train_acc"],
                          "test acc": record.get("test_acc")})
        self.live.draw(force=True)

    def figure(self):
        """The curves of the last run as a matplotlib figure (for a static notebook output)."""
        return self.live.figure

    def _ipython_display_(self):
        display(self.widget)


def training_panel(fmnist, **kwargs):
    """Lesson 05's training panel (``TrainingPanel``): preset, learning rate, epochs, batch size, image size,
    dropout, BatchNorm, momentum, device; Train and Stop; live curves and a progress bar."""
    return TrainingPanel(fmnist, **kwargs)


# ---------------------------------------------------------------------------------------------
# Lesson 06: a tiny live experiment, one run per click, every run kept in a table

LIVE_COLUMNS = ("head", "dropout", "num_1x1", "batch_norm", "train_size", "num_epochs", "lr", "seed")


def live_runs_view(runs):
    """HTML table of lesson 06's live runs (settings and ``experiments.live_run`` results), newest last."""
    if not runs:
        return "<p>No run yet: choose the settings and press <b>Train</b>.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in
                   ("#",) + LIVE_COLUMNS + ("parameters", "trained", "train acc", "test acc", "gap", "seconds"))
    body = ""
    for i, r in enumerate(runs, 1):
        cells = [str(i)] + [str(r[c]) for c in LIVE_COLUMNS] + [
            f"{r['parameters']:,}", r["epochs_trained"], f"{r['train_acc']:.3f}", f"{r['test_acc']:.3f}",
            f"{r['gap']:+.3f}", f"{r['seconds']:.1f}"]
        body += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table><p>gap = train accuracy − test accuracy (overfitting)</p>"


class ExperimentPanel:
    """Lesson 06's panel: train a tiny 28-px NiN (or its FC-head twin) with the chosen head, dropout,
    1×1 convs, BatchNorm, training images, epochs, learning rate and seed; every run is kept in a table.

    ``train()`` (what the Train button calls) starts ``experiments.live_run`` with the controls' values in a
    background thread (Stop ends it after the current batch; the run is measured and kept as far as it got) and
    returns True, or False when a value is not allowed (the panel then shows the sentence); ``wait()`` returns
    the run's result.
    """

    def __init__(self, fmnist, *, device="cpu", head="gap", dropout=0.5, num_1x1=2, batch_norm=True,
                 train_size=512, num_epochs=10, lr=0.1, seed=0):
        style = {"description_width": "initial"}
        self.fmnist, self.device = fmnist, device
        self.controls = {
            "head": W.Dropdown(options=[("GAP (NiN)", "gap"), ("FC head (AlexNet-style)", "fc"),
                                        ("late reduction", "late")], value=head, description="head", style=style),
            "dropout": W.FloatSlider(value=dropout, min=0.0, max=0.9, step=0.1, description="dropout", style=style),
            "num_1x1": W.IntSlider(value=num_1x1, min=0, max=3, description="1×1 convs per block", style=style),
            "batch_norm": W.Checkbox(value=batch_norm, description="BatchNorm", style=style),
            "train_size": W.IntSlider(value=train_size, min=64, max=4096, step=64, description="training images",
                                      style=style),
            "num_epochs": W.IntSlider(value=num_epochs, min=1, max=20, description="epochs", style=style),
            "lr": W.FloatText(value=lr, description="peak lr", style=style),
            "seed": W.IntText(value=seed, description="seed", style=style),
        }
        self.background = BackgroundRun(self.train)
        c = self.controls
        self.box = W.VBox([W.HBox([c["head"], c["dropout"], c["num_1x1"]]),
                           W.HBox([c["batch_norm"], c["train_size"], c["num_epochs"]]),
                           W.HBox([c["lr"], c["seed"]]), self.background.controls_row, self.background.status])
        self.runs, self.message, self.handle, self.result = [], "", None, None

    train_button = property(lambda self: self.background.train_button)

    def values(self):
        return {name: control.value for name, control in self.controls.items()}

    def train(self, _=None):
        """Start one live experiment with the current values in the background; False if a value is not allowed."""
        values = self.values()
        try:
            settings = experiments.live_preset(**values)
        except ValueError as error:
            self.message = _refusal(error)
            self._show()
            return False
        self.message, self.result = "", None
        return self.background.start(lambda stop, progress: self._run(values, settings, stop, progress), "the run")

    def _run(self, values, settings, stop, progress):
        try:
            self.result = experiments.live_run(fmnist=self.fmnist, device=self.device, stop=stop,
                                               callbacks=[progress], **values)
            self.runs.append({**values, **self.result})
            self.background.say(f"<p>run {len(self.runs)}: {html.escape(self.result['epochs_trained'])}, test acc "
                                f"{self.result['test_acc']:.3f}</p>")
        except ValueError as error:
            self.message = _refusal(error)
        self._show()

    def wait(self, timeout=None):
        """Block until the background run ends; returns its result dict (None if it did not run)."""
        self.background.wait(timeout)
        return self.result

    def view(self):
        """The panel's result: the message (if any) and the table of runs."""
        return self.message + live_runs_view(self.runs)

    def _show(self):
        if self.handle is not None:
            self.handle.update(HTML(self.view()))

    def _ipython_display_(self):
        display(self.box)
        self.handle = display(HTML(self.view()), display_id=True)


def experiment_panel(fmnist, **defaults):
    """Lesson 06's live-experiment panel (``ExperimentPanel``) over ``experiments.live_run``."""
    return ExperimentPanel(fmnist, **defaults)
