"""ipywidgets panels over the nin_lib functions (widgets): the only module that imports ipywidgets.

Each panel is thin: its logic is a plain function elsewhere in nin_lib (with unit tests); bad input
is shown in the panel as one sentence, nothing crashes.
"""
import html

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import HTML, display

from nin_lib import shapes, viz


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
# Lesson 06: a tiny live experiment, one run per click, every run kept in a table

LIVE_COLUMNS = ("head", "dropout", "num_1x1", "batch_norm", "train_size", "num_epochs", "lr", "seed")


def live_runs_view(runs):
    """HTML table of lesson 06's live runs (settings and ``experiments.live_run`` results), newest last."""
    if not runs:
        return "<p>No run yet: choose the settings and press <b>Train</b>.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in
                   ("#",) + LIVE_COLUMNS + ("parameters", "train acc", "test acc", "gap", "seconds"))
    body = ""
    for i, r in enumerate(runs, 1):
        cells = [str(i)] + [str(r[c]) for c in LIVE_COLUMNS] + [
            f"{r['parameters']:,}", f"{r['train_acc']:.3f}", f"{r['test_acc']:.3f}", f"{r['gap']:+.3f}",
            f"{r['seconds']:.1f}"]
        body += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table><p>gap = train accuracy − test accuracy (overfitting)</p>"


class ExperimentPanel:
    """Lesson 06's panel: train a tiny 28-px NiN (or its FC-head twin) with the chosen head, dropout,
    1×1 convs, BatchNorm, training images, epochs, learning rate and seed; every run is kept in a table.

    ``train()`` (what the button calls) runs ``experiments.live_run`` with the controls' values and
    returns its result, or None when a value is not allowed (the panel then shows the sentence).
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
        self.button = W.Button(description="Train", button_style="primary", icon="play")
        self.button.on_click(self.train)
        c = self.controls
        self.box = W.VBox([W.HBox([c["head"], c["dropout"], c["num_1x1"]]),
                           W.HBox([c["batch_norm"], c["train_size"], c["num_epochs"]]),
                           W.HBox([c["lr"], c["seed"], self.button])])
        self.runs, self.message, self.handle = [], "", None

    def values(self):
        return {name: control.value for name, control in self.controls.items()}

    def train(self, _=None):
        """Run one live experiment with the current values; returns its result dict or None."""
        from nin_lib import experiments

        values = self.values()
        self.button.disabled = True
        self._show("<p><i>training…</i></p>")
        try:
            result = experiments.live_run(fmnist=self.fmnist, device=self.device, **values)
            self.runs.append({**values, **result})
            self.message = ""
        except ValueError as error:
            result = None
            self.message = f'<p style="color:#b00020"><b>Not possible:</b> {html.escape(str(error))}</p>'
        finally:
            self.button.disabled = False
        self._show()
        return result

    def view(self):
        """The panel's result: the message (if any) and the table of runs."""
        return self.message + live_runs_view(self.runs)

    def _show(self, extra=""):
        if self.handle is not None:
            self.handle.update(HTML(self.view() + extra))

    def _ipython_display_(self):
        display(self.box)
        self.handle = display(HTML(self.view()), display_id=True)


def experiment_panel(fmnist, **defaults):
    """Lesson 06's live-experiment panel (``ExperimentPanel``) over ``experiments.live_run``."""
    return ExperimentPanel(fmnist, **defaults)


# ---------------------------------------------------------------------------------------------
# Lessons 03-04: the input-size panel, the adaptive-pooling-windows panel, the class-confidence-map panel

def input_size_view(net, input_size=224, depth="top"):
    """The input-size panel's result (lesson 03): the trace table, or (as a ValueError) why the size does not fit."""
    result = shapes.trace_or_message(net, input_size, depth=depth)
    if isinstance(result, str):
        raise ValueError(result)
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
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(images):
        raise ValueError(f"image index {index!r} is not allowed; use a whole number from 0 to {len(images) - 1}.")
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
# Lesson 05: the training panel (train in a background thread, Stop, live curves, progress bar)

class TrainingPanel:
    """Lesson 05's hyper-parameter panel: pick a preset, change its values, press Train; Stop works
    while it trains (the run is in a background thread); live curves and a progress bar show how it
    goes. Afterwards ``panel.net`` is the trained net and ``panel.history`` its ``train.History``.

    Bad settings (a batch size of 0, an image too small for the net, a missing device) are shown in
    the panel as one sentence; nothing is started then. ``train()`` and ``stop()`` are what the
    buttons call; ``wait()`` blocks until the run in the background ends (scripts and tests).
    """

    SUBSETS = (("1,000", 1000), ("5,000", 5000), ("10,000", 10000), ("30,000", 30000), ("all 60,000", None))

    def __init__(self, fmnist, *, preset="quick", device="auto", subset=10000, test_subset=None,
                 redraw_seconds=1.0):
        import threading
        from nin_lib import presets

        self.fmnist = fmnist
        self.test_subset = test_subset
        self.redraw_seconds = redraw_seconds
        self.stop_event = threading.Event()
        self.thread = None
        self.net, self.history, self.run, self.error = None, None, None, None
        self._batch_points, self._epochs, self._last_draw = [], [], 0.0
        style = {"description_width": "initial"}
        subsets = [v for _, v in self.SUBSETS]
        self.controls = {
            "preset": W.Dropdown(options=presets.names(), value=preset, description="preset", style=style),
            # a log slider over 1e-4 … 1: the exponents are min/max, so 0.1 is shown as 0.1 (the
            # default min=0, max=4 would clamp it to 1.0)
            "lr": W.FloatLogSlider(value=0.1, base=10, min=-4, max=0, step=0.1, readout_format=".3g",
                                   description="learning rate", style=style, continuous_update=False),
            "num_epochs": W.IntSlider(value=2, min=1, max=50, description="epochs", style=style),
            "batch_size": W.IntText(value=128, description="batch size", style=style, layout=W.Layout(width="160px")),
            "resize": W.IntText(value=28, description="image size (px)", style=style, layout=W.Layout(width="180px")),
            "dropout": W.FloatSlider(value=0.5, min=0.0, max=0.9, step=0.05, description="dropout", style=style),
            "batch_norm": W.Checkbox(value=False, description="BatchNorm", style=style),
            "momentum": W.FloatSlider(value=0.0, min=0.0, max=0.99, step=0.01, description="momentum", style=style),
            "device": W.Dropdown(options=["auto", "cpu", "cuda", "mps"], value=device, description="device",
                                 style=style),
            "subset": W.Dropdown(options=list(self.SUBSETS), value=subset if subset in subsets else None,
                                 description="training images", style=style),
        }
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.train_button.on_click(self.train)
        self.stop_button.on_click(self.stop)
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress", style=style,
                                      layout=W.Layout(width="420px"))
        self.status = W.HTML("<p>Choose the settings and press <b>Train</b>.</p>")
        self.curves = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.controls["preset"].observe(lambda change: self.load_preset(change["new"]), names="value")
        self.load_preset(preset)
        c = self.controls
        self.widget = W.VBox([
            W.HBox([c["preset"], c["device"], c["subset"]]),
            W.HBox([c["lr"], c["num_epochs"]]),
            W.HBox([c["batch_size"], c["resize"], c["dropout"]]),
            W.HBox([c["batch_norm"], c["momentum"]]),
            W.HBox([self.train_button, self.stop_button, self.progress]),
            self.status, self.curves])

    # -- settings ---------------------------------------------------------------------------------

    def load_preset(self, name):
        """Put a preset's values into the controls."""
        from nin_lib import presets

        p = presets.get_preset(name)
        c = self.controls
        c["lr"].value = p.lr
        c["num_epochs"].value = min(p.num_epochs, c["num_epochs"].max)
        c["batch_size"].value = p.batch_size
        c["resize"].value = p.image_size()
        c["dropout"].value = p.dropout
        c["batch_norm"].value = p.batch_norm
        c["momentum"].value = p.momentum

    def settings(self):
        """The preset the controls describe (validated: a bad value raises ValueError)."""
        from nin_lib import presets

        v = {name: control.value for name, control in self.controls.items()}
        base = presets.get_preset(v["preset"])
        momentum = float(v["momentum"])
        return base.with_overrides(
            lr=float(v["lr"]), num_epochs=v["num_epochs"], batch_size=v["batch_size"],
            resize=None if base.resize is None and v["resize"] == 28 else v["resize"],
            dropout=float(v["dropout"]), batch_norm=bool(v["batch_norm"]), momentum=momentum,
            nesterov=base.nesterov and momentum > 0, device=v["device"], subset=v["subset"],
            test_subset=self.test_subset)

    # -- buttons ----------------------------------------------------------------------------------

    @property
    def running(self):
        return self.thread is not None and self.thread.is_alive()

    def train(self, _=None):
        """Start training with the current settings in a background thread; returns True if it started."""
        import threading
        from nin_lib import presets, runtime

        if self.running:
            self._say("<p>Already training: press <b>Stop</b> first.</p>")
            return False
        try:
            preset = self.settings()
            # a missing GPU or a run too big for the memory is a message, not a crash
            presets.check_memory(preset, runtime.pick_device(preset.device))
        except ValueError as error:
            self.error = str(error)
            self._say(f'<p style="color:#b00020"><b>Not possible:</b> {html.escape(str(error))}</p>')
            return False
        self.error = None
        self.stop_event.clear()
        self._batch_points, self._epochs = [], []
        self.progress.value, self.progress.max = 0, 1
        self.progress.bar_style = ""
        self.train_button.disabled, self.stop_button.disabled = True, False
        self._say(f"<p><i>preparing {html.escape(preset.name)} …</i></p>")
        self.thread = threading.Thread(target=self._run, args=(preset,), daemon=True, name="nin-training-panel")
        self.thread.start()
        return True

    def stop(self, _=None):
        """Ask the run to stop after the current batch (it keeps its net and history)."""
        self.stop_event.set()
        if self.running:
            self._say("<p><i>stopping after this batch …</i></p>")

    def wait(self, timeout=None):
        """Block until the background run ends; returns the history (or None)."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.history

    # -- the background run -----------------------------------------------------------------------

    def _run(self, preset):
        from nin_lib import presets, runtime

        try:
            run = presets.build_run(preset, data=self.fmnist)
            self.run, self.net = run, run.net
            where = runtime.describe_device(run.device)
            self._say(f"<p><i>training {html.escape(preset.name)} on {html.escape(where)} …</i></p>")
            self.history = run.fit(callbacks=[_PanelCallback(self)], stop=self.stop_event, progress=False,
                                   verbose=False)
            self._draw(force=True)
            color = "#b00020" if self.history.stopped else "#1b5e20"
            self._say(f'<p style="color:{color}">{html.escape(self.history.summary())}</p>')
            self.progress.bar_style = "warning" if self.history.stopped else "success"
        except ValueError as error:  # e.g. a value only the run itself can check
            self.error = str(error)
            self._say(f'<p style="color:#b00020"><b>Not possible:</b> {html.escape(str(error))}</p>')
        except Exception as error:  # never a traceback in the panel
            self.error = f"{type(error).__name__}: {error}"
            self._say(f'<p style="color:#b00020"><b>Training failed:</b> {html.escape(self.error)}</p>')
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True

    def _say(self, text):
        self.status.value = text

    def _draw(self, force=False):
        import time

        now = time.perf_counter()
        if not force and now - self._last_draw < self.redraw_seconds:
            return
        self._last_draw = now
        name = self.controls["preset"].value
        fig = viz.history_curves(self._epochs, title=f"{name}: training curves", batch_points=self._batch_points)
        import io
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        _close(fig)  # a pyplot figure when drawn from the main thread: not shown twice
        self.curves.value = buffer.getvalue()

    def figure(self):
        """The curves of the last run as a matplotlib figure (for a static notebook output)."""
        return viz.history_curves(self._epochs, title=f"{self.controls['preset'].value}: training curves",
                                  batch_points=self._batch_points)

    def _ipython_display_(self):
        display(self.widget)


class _PanelCallback:
    """Feeds the panel's progress bar and curves from ``fit``'s callbacks."""

    def __init__(self, panel):
        self.panel, self.num_batches, self.every = panel, None, 1

    def on_train_begin(self, info):
        self.num_batches = info["num_batches"] or 1
        self.panel.progress.max = max(1, info["num_epochs"] * self.num_batches)
        self.every = max(1, self.num_batches // 10)

    def on_batch_end(self, step):
        self.panel.progress.value = (step.epoch - 1) * self.num_batches + step.batch
        if step.batch % self.every == 0:
            self.panel._batch_points.append((step.epoch - 1 + step.batch / self.num_batches, step.loss))
            self.panel._draw()

    def on_epoch_end(self, record, history):
        self.panel._epochs = list(history.epochs)
        test = record.get("test_acc")
        self.panel._say(f"<p><i>epoch {record['epoch']}: loss {record['loss']:.3f}, train acc "
                        f"{record['train_acc']:.3f}, test acc {'n/a' if test is None else format(test, '.3f')}</i></p>")
        self.panel._draw(force=True)

    def on_train_end(self, history):
        self.panel._epochs = list(history.epochs)


def training_panel(fmnist, **kwargs):
    """Lesson 05's training panel (``TrainingPanel``): preset, learning rate, epochs, batch size, image size,
    dropout, BatchNorm, momentum, device; Train and Stop; live curves and a progress bar."""
    return TrainingPanel(fmnist, **kwargs)
