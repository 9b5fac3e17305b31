"""ipywidgets panels (7.7 and 8; the only module importing ipywidgets): a bad value is one sentence, never a crash."""
import gc
import html
import io
import itertools
import math
import threading
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from IPython.display import HTML, Image, display

from . import checks, data, experiments, models, presets, runtime, shapes, train, viz

STYLE = {"description_width": "initial"}


PANEL_DPI = 80  # a panel's figures become PNGs at this resolution


def _png(fig):
    """A figure as PNG bytes, drawn once (IPython's tight crop draws it twice); pyplot forgets it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PANEL_DPI, pil_kwargs={"compress_level": 1})  # fast, a little larger
    plt.close(fig)
    return buffer.getvalue()


def _shown(item):
    """What a panel displays: a figure as one PNG image, anything else as it is."""
    return Image(_png(item)) if isinstance(item, plt.Figure) else item


def message(error):
    """An exception as one red HTML line: a ``checks.Refusal`` is not possible, anything else is a bug."""
    if isinstance(error, checks.Refusal):
        return f'<p style="color:#b00020"><b>Not possible:</b> {html.escape(str(error))}</p>'
    return f'<p style="color:#b00020"><b>Error (a bug):</b> {html.escape(f"{type(error).__name__}: {error}")}</p>'


# Lessons 01-06: panels whose results are ordinary notebook outputs
class ResultPanel:
    """Rows of controls, widgets ``below``, then ``render(**values)``'s HTML and figures as outputs (lessons 01-06)."""

    def __init__(self, controls, render, rows=None, below=()):
        gc.collect()  # what lives now (torch, the data, the lesson's tensors) stays out of the collector's full
        gc.freeze()   # passes, which otherwise stall a redraw by a fifth of a second now and then
        self.controls, self.render, self.handles = dict(controls), render, []
        self.box = W.VBox([W.HBox([self.controls[name] for name in row]) for row in rows or [list(self.controls)]]
                          + list(below))
        for control in self.controls.values():
            control.observe(self._changed, names="value")

    def result(self):
        """What the panel shows for the current values: a list of displayable objects."""
        try:
            items = list(self.render(**{name: control.value for name, control in self.controls.items()}))
        except Exception as error:  # a Refusal is the learner's, anything else a bug: either way one line
            return [HTML(message(error))]
        for fig in [item for item in items if isinstance(item, plt.Figure)]:
            plt.close(fig)  # the panel shows it; pyplot must not show it again when the cell ends
        return items

    def _changed(self, change=None):
        if getattr(self, "_drawing", False):  # a view that moves a control (a slider's new maximum) draws once
            return
        self._drawing = True
        try:
            items = self.result()
        finally:
            self._drawing = False
        for handle, item in zip(self.handles, items + [HTML("")] * (len(self.handles) - len(items))):
            if handle is not None:  # None outside IPython
                handle.update(_shown(item))

    def _ipython_display_(self):
        display(self.box)
        self.handles = [display(_shown(item), display_id=True) for item in self.result()]


def _table(rows):
    return "<table>" + "".join(f'<tr><td style="text-align:left">{html.escape(a)}</td>'
                               f'<td style="text-align:right">{html.escape(b)}</td></tr>' for a, b in rows) + "</table>"


def _slider(value, low, high, description, **options):
    return W.IntSlider(value=value, min=low, max=high, description=description, style=STYLE, **options)


def conv_cost_panel(in_channels=96, out_channels=96, kernel_size=1, input_size=54, stride=1, padding=0):
    """Sliders for one Conv2d's channels, kernel, stride, padding, input size: parameters, MACs, shape (lesson 01)."""
    def view(in_channels, out_channels, kernel_size, input_size, stride, padding):
        c = shapes.conv_cost(in_channels, out_channels, kernel_size, input_size, stride, padding)
        one = shapes.conv_cost(in_channels, out_channels, 1, input_size, stride, 0)
        _, h, w = c["output_shape"]
        dense = in_channels * input_size ** 2 * out_channels * h * w + out_channels * h * w
        rows = [("input (channels × height × width)", f"{in_channels} × {input_size} × {input_size}"),
                ("output (channels × height × width)", " × ".join(map(str, c["output_shape"]))),
                ("parameters", f"{c['parameters']:,}  = {in_channels}·{out_channels}·{kernel_size}² weights + "
                               f"{out_channels} biases"),
                ("multiply-accumulates (MACs) per image", f"{c['macs']:,}"),
                ("a 1×1 conv, same channels and stride", f"{one['parameters']:,} parameters, {one['macs']:,} MACs"),
                ("a fully connected layer, whole input map → whole output map", f"{dense:,} parameters")]
        fig = viz.conv_cost_bars({f"your {kernel_size}×{kernel_size} conv": (c["parameters"], c["macs"]),
                                  "a 1×1 conv, same channels and stride": (one["parameters"], one["macs"])},
                                 title=f"{in_channels} → {out_channels} channels on a {input_size}×{input_size} "
                                       "input: parameters and MACs (linear scale)")
        return [HTML(_table(rows)), fig]

    controls = {"in_channels": _slider(in_channels, 1, 512, "c_in"), "stride": _slider(stride, 1, 4, "stride"),
                "out_channels": _slider(out_channels, 1, 512, "c_out"), "padding": _slider(padding, 0, 5, "padding"),
                "kernel_size": _slider(kernel_size, 1, 11, "kernel size"),
                "input_size": _slider(input_size, 1, 224, "input size (px)")}
    return ResultPanel(controls, view,
                       rows=[["in_channels", "out_channels", "kernel_size"], ["input_size", "stride", "padding"]])


def nin_params_panel(head="gap", num_1x1=2, width=1.0, hidden=4096):
    """Head, hidden units, 1×1 convs and width: NiN against the same trunk with an FC head, as shares (lesson 02)."""
    def hidden_units(value):  # AlexNet's FC head has 4,096; the panel allows twice that
        return checks.whole_number("hidden units", value, 1, 8192)

    def view(head, hidden, num_1x1, width):  # the chosen net's counts, then both nets' stacked bars
        gap_name, fc_name = "NiN (last NiN block + GAP)", f"same trunk + FC head ({hidden_units(hidden):,} hidden)"
        nets = {gap_name: shapes.nin_parameter_breakdown("gap", num_1x1=num_1x1, width=width),
                fc_name: shapes.nin_parameter_breakdown("fc", num_1x1=num_1x1, width=width, hidden=hidden)}
        mine = fc_name if head == "fc" else gap_name
        b, seed = nets[mine], shapes.nin_parameter_breakdown("gap")
        rows = [("your net", mine),
                ("parameters in total", f"{b['total']:,}  ({b['total'] / seed['total']:.2f} × the seed's NiN)"),
                ("in the trunk (three NiN blocks)", f"{b['trunk']:,}"),
                ("in the head", f"{b['head']:,}  ({b['head'] / b['total']:.0%} of the net)")]
        fig = viz.parameter_shares(nets, mark=mine, title=f"{num_1x1} × 1×1 conv per block, width {width:g}, "
                                                          "224×224 input (bold: your net)")
        return [HTML(_table(rows)), fig]

    controls = {
        "head": W.ToggleButtons(options=[("GAP (NiN)", "gap"), ("FC (AlexNet-style)", "fc")],
                                value=checks.choice("head", head, ("gap", "fc")), description="head", style=STYLE),
        "hidden": W.IntText(value=hidden_units(hidden), description="FC hidden units", style=STYLE,
                            layout=W.Layout(width="200px")),
        "num_1x1": _slider(checks.whole_number("num_1x1", num_1x1, 0, 4), 0, 4, "1×1 convs per block"),
        "width": W.FloatSlider(value=checks.number("width", width, 0.25, 2.0), min=0.25, max=2.0, step=0.25,
                               description="width ×", style=STYLE)}
    return ResultPanel(controls, view, rows=[["head", "hidden"], ["num_1x1", "width"]])


def input_size_panel(net=None, input_size=224, depth="top"):
    """A slider for the input side: the table, or the layer that fails and the sizes that fit (lesson 03)."""
    def view(input_size, depth):  # the trace table (a size the net cannot take raises its Refusal)
        result = shapes.trace(net, input_size, depth=depth)
        last = next((r for r in reversed(result) if len(r.output_shape) == 4 and "Adaptive" not in r.name), result[-1])
        summary = (f"input {input_size}×{input_size}: the last block's maps are "
                   f"{last.output_shape[-2]}×{last.output_shape[-1]}; "
                   f"{result.params:,} parameters, {result.macs:,} multiply-accumulates per image")
        return [HTML(f"<p>{html.escape(summary)}</p>{result._repr_html_()}")]

    if net is None:  # the seed's NiN, on the meta device (shapes without memory)
        with torch.device("meta"):
            net = models.nin()
    controls = {
        "input_size": _slider(input_size, 1, 320, "input side (px)", continuous_update=False),
        "depth": W.ToggleButtons(options=[("one row per block", "top"), ("one row per layer", "leaf")], value=depth,
                                 description="rows", style=STYLE)}
    return ResultPanel(controls, view)


def adaptive_windows_panel(size=10, out=4):
    """Sliders for the input and output lengths of adaptive pooling: its windows as text and drawn (lesson 04)."""
    def view(size, out):
        fig = viz.adaptive_windows_figure(size, out)  # checks size and out
        windows = shapes.adaptive_windows(size, out)
        widths = sorted({e - s for s, e in windows})
        text = (f"{size} → {out}: windows {', '.join(f'[{s}, {e})' for s, e in windows)}; "
                f"window widths {', '.join(map(str, widths))} pixels"
                + ("; every window has the same width and they do not overlap: an ordinary pooling layer "
                   f"(kernel {size // out}, stride {size // out}) does the same" if size % out == 0 else
                   "; size/out is not a whole number, so neighbouring windows overlap (and widths can differ)"))
        return [HTML(f"<p>{html.escape(text)}</p>"), fig]

    controls = {"size": _slider(size, 1, 40, "input length (px)"), "out": _slider(out, 1, 12, "output length (cells)")}
    return ResultPanel(controls, view)


def _pixel_sliders(size, row, col, row_name="pixel row", col_name="pixel column"):
    return {"row": _slider(checks.whole_number(row_name, row, 0, size - 1), 0, size - 1, row_name),
            "col": _slider(checks.whole_number(col_name, col, 0, size - 1), 0, size - 1, col_name)}


def one_pixel_panel(features, conv, images, index=0, row=14, col=14):
    """Pick an image and a pixel: the ``features`` module's maps there, ``conv``'s 1×1 weights, y = W·x + b beside
    the conv's own output at that pixel (lesson 01). ``images``: (N, 1, H, W) in [0, 1]."""
    if tuple(conv.kernel_size) != (1, 1):
        raise checks.refuse(f"one_pixel_panel needs a 1×1 conv; this one is {conv.kernel_size[0]}×{conv.kernel_size[1]}")

    def view(index, row, col):
        checks.whole_number("image index", index, 0, len(images) - 1)
        with torch.no_grad():
            x = features.eval()(images[index:index + 1])[0]
            y = conv.eval()(x[None])[0]
        checks.whole_number("pixel row", row, 0, x.shape[1] - 1)
        checks.whole_number("pixel column", col, 0, x.shape[2] - 1)
        return [viz.one_pixel_figure(images[index, 0], x, y, conv.weight[:, :, 0, 0], conv.bias, (row, col))]

    side = images.shape[-1]
    controls = {"index": _slider(checks.whole_number("image index", index, 0, len(images) - 1), 0, len(images) - 1,
                                 "test image"), **_pixel_sliders(side, row, col)}
    return ResultPanel(controls, view, rows=[["index"], ["row", "col"]])


def receptive_field_panel(net, image, layer=None, row=0, col=0, input_size=224):
    """Pick a layer of ``net`` and one cell of its output: the cell's field on ``image`` (resized to the input side),
    each pixel's influence, and the staircase of that layer's side with the input side (lesson 03)."""
    stages = [(i, f"{i}: " + (f"NiN block, {shapes.layer_name(m[0])}" if isinstance(m, torch.nn.Sequential) else
                              shapes.layer_name(m))) for i, m in enumerate(net.children())
              if any(isinstance(x, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)) for x in m.modules())]
    smallest = shapes.min_input_size(net)
    controls = {}

    def view(layer, row, col, input_size):
        checks.whole_number("image side", input_size, 1, 320, unit="of pixels")
        chain = shapes.windows(net, layer)
        side = shapes.side_after(chain, input_size)
        if side < 1:
            raise shapes.InputSizeError(f"a {input_size}×{input_size} image gives layer {layer} no output; this net "
                                        f"needs at least {smallest}×{smallest}")
        for name in ("row", "col"):  # the sliders follow the layer's map; a value past its edge moves to the edge
            controls[name].max = side - 1
        row, col = min(row, side - 1), min(col, side - 1)
        shown = torch.nn.functional.interpolate(image.reshape(1, 1, *image.shape[-2:]).float(), size=input_size,
                                                mode="bilinear", align_corners=False)[0, 0]
        sizes = list(range(max(1, smallest - 30), 321))
        stair = (sizes, {f"layer {layer}": [max(shapes.side_after(chain, n), 0) or None for n in sizes]},
                 smallest, input_size)
        (r0, r1), (c0, c1) = shapes.cell_field(chain, row), shapes.cell_field(chain, col)
        title = (f"layer {dict(stages)[layer]}: cell ({row}, {col}) of its {side}×{side} map sees "
                 f"{r1 - r0 + 1}×{c1 - c0 + 1} input pixels ({input_size}×{input_size} image)")
        return [viz.receptive_field_view(shown, shapes.influence(chain, input_size, row, col), (r0, r1), (c0, c1),
                                         stair, title)]

    layer = stages[-1][0] if layer is None else checks.choice("layer", layer, tuple(i for i, _ in stages))
    controls.update(layer=W.Dropdown(options=[(name, i) for i, name in stages], value=layer, description="layer",
                                     style=STYLE),
                    **_pixel_sliders(320, row, col, "cell row", "cell column"),
                    input_size=_slider(checks.whole_number("image side", input_size, smallest, 320, unit="of pixels"),
                                       smallest, 320, "image side (px)", continuous_update=False))
    return ResultPanel(controls, view, rows=[["layer", "input_size"], ["row", "col"]])


def class_maps_panel(net, images, labels, index=0, dx=0, dy=0, class_names=None, centres=None):
    """Pick a test image and move it: every class map, its mean (the score GAP gives), the prediction, and the
    scores against the unshifted image's (lesson 04). ``images``: (N, 1, H, W) in [0, 1] at the net's input side."""
    side = images.shape[-1]

    def view(index, dx, dy):
        checks.whole_number("image index", index, 0, len(images) - 1)
        X = images[index:index + 1]
        X = torch.cat([X, data.shift(X, dx, dy)])  # the image as it is and moved
        maps, logits = viz.class_maps(net, X.to(next(net.parameters()).device))
        moved = f"moved {dx:+d} px right, {dy:+d} px down" if dx or dy else "not moved"
        return [viz.confidence_maps_figure(X[1], maps[1], logits[1], label=int(labels[index]),
                                           class_names=class_names, centres=centres, reference=logits[0],
                                           title=f"test image {index}, {moved}: its class maps and their means")]

    controls = {"index": _slider(checks.whole_number("image index", index, 0, len(images) - 1), 0, len(images) - 1,
                                 "test image", continuous_update=False),
                "dx": _slider(dx, -(side // 3), side // 3, "shift right (px)"),
                "dy": _slider(dy, -(side // 3), side // 3, "shift down (px)")}
    return ResultPanel(controls, view, rows=[["index"], ["dx", "dy"]])


# Lessons 05-06: training in a background thread, with Train, Stop, a progress bar and a status line
class BackgroundRun(ResultPanel, train.Callback):
    """A panel with Train, Stop, a progress bar and a status line over ``_run(plan, callbacks)`` (lessons 05, 06)."""

    def __init__(self, controls, rows, below=(), render=lambda **values: []):
        self.stop_event, self.thread, self.on_batch = threading.Event(), None, None
        self.outcome, self.error = None, None
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress", style=STYLE,
                                      layout=W.Layout(width="420px"))
        self.status = W.HTML("<p>Choose the settings and press <b>Train</b>.</p>")
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(self.stop)
        buttons = W.HBox([self.train_button, self.stop_button, self.progress])
        super().__init__(controls, render, rows, [buttons, self.status, *below])

    running = property(lambda self: self.thread is not None and self.thread.is_alive())

    def fail(self, error):
        """Show why a run did not start or finish (``message``); ``error`` keeps it as text."""
        self.error = str(error) if isinstance(error, checks.Refusal) else f"{type(error).__name__}: {error}"
        self.status.value = message(error)

    def train(self, _=None):
        """Start a run of the current values in the background; False if it did not start (the panel says why)."""
        try:  # a bad value, a missing device, too little memory or CPU time: refused before a thread starts
            plan = self.prepare()
        except Exception as error:  # a Refusal as one sentence, anything else as a bug
            self.fail(error)
            return False
        if self.running:
            self.status.value = "<p>Already training: press <b>Stop</b> first.</p>"
            return False
        self.stop_event.clear()
        self.outcome, self.error = None, None
        self.progress.value, self.progress.max, self.progress.bar_style = 0, 1, ""
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "<p><i>preparing the run …</i></p>"

        def body():
            try:  # the panel is a fit callback too: it moves the bar, hands each batch to on_batch, says each epoch
                self.outcome = self._run(plan, [self, train.Stop(self.stop_event)])
            except Exception as error:  # never a traceback in a thread: the panel says what went wrong
                self.fail(error)
            finally:
                self.train_button.disabled, self.stop_button.disabled = False, True

        self.thread = threading.Thread(target=body, daemon=True, name="nin-panel-run")
        self.thread.start()
        return True

    def stop(self, _=None):
        """Ask the run to stop after the current batch (it keeps its net and history)."""
        self.stop_event.set()
        if self.running:
            self.status.value = "<p><i>stopping after this batch …</i></p>"

    def wait(self, timeout=None):
        """Block until the background run ends (scripts, tests); returns its ``outcome``."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.outcome

    def on_train_begin(self, run):
        self.progress.max = max(1, (run.num_epochs - run.start_epoch) * (run.num_batches or 1))

    def on_batch_end(self, run):
        self.progress.value = min(self.progress.max, self.progress.value + 1)
        if self.on_batch is not None:
            self.on_batch(run)

    def on_epoch_end(self, run):
        self.status.value = f"<p><i>{html.escape(train.format_epoch(run.record, run.num_epochs))}</i></p>"


# Lesson 05's training panel: the preset value each control shows (the one map between the panel and a preset)
PANEL_FIELDS = ("lr", "num_epochs", "batch_size", "resize", "dropout", "batch_norm", "momentum", "final_relu")
MIN_STEPS = 100  # a preset's settings train at least this many steps, so that even 1,000 images learn
RUN_NAMES = {"name": "preset", "subset": "images", "lr": "lr", "num_epochs": "epochs", "batch_size": "batch size",
             "resize": "image size", "dropout": "dropout", "batch_norm": "BatchNorm", "momentum": "momentum",
             "final_relu": "final ReLU"}  # what a past run's label calls each setting that differs


def run_label(number, past, current):
    """'run 2: lr 0.05, final ReLU on': the settings of preset ``past`` that differ from ``current`` (lesson 05)."""
    def shown(p, field):
        value = p.image_size() if field == "resize" else getattr(p, field)
        return ("on" if value else "off") if isinstance(value, bool) else "all" if value is None else _value(value)
    differ = [f"{name} {shown(past, field)}" for field, name in RUN_NAMES.items()
              if shown(past, field) != shown(current, field)]
    return f"run {number}: {', '.join(differ) or 'same settings'}"


class TrainingPanel(BackgroundRun):
    """Lesson 05's panel: a preset, its values, Train and Stop, live curves with the last runs, and how often each
    class is predicted on some test images (a dead class: a bar at 0); then ``net`` and ``history`` hold it."""

    def __init__(self, fmnist, *, preset="quick", device="auto", subset=10000, test_subset="auto", redraw_seconds=1.0):
        self.fmnist, self.test_subset, self.redraw_seconds = fmnist, test_subset, redraw_seconds
        self.net, self.run, self.live = None, None, None
        self.past, self.runs, self.sample, self.counts, self.counted_at, self._next_count = [], 0, None, None, 0, 0
        subsets = [(f"{n:,}", n) for n in (1000, 5000, 10000, 30000)] + [(f"all {len(fmnist.train_labels):,}", None)]
        c = {
            "preset": W.Dropdown(options=presets.names(), value=preset, description="preset", style=STYLE),
            # a log slider over 1e-4 … 1: the exponents are min/max, so 0.1 is shown as 0.1
            "lr": W.FloatLogSlider(value=0.1, base=10, min=-4, max=0, step=0.1, readout_format=".3g",
                                   description="learning rate", style=STYLE, continuous_update=False),
            "num_epochs": _slider(1, 1, 50, "epochs"),
            "batch_size": W.IntText(value=128, description="batch size", style=STYLE, layout=W.Layout(width="160px")),
            "resize": W.IntText(value=28, description="image size (px)", style=STYLE, layout=W.Layout(width="180px")),
            "dropout": W.FloatSlider(value=0.5, min=0.0, max=0.9, step=0.05, description="dropout", style=STYLE),
            "batch_norm": W.Checkbox(value=False, description="BatchNorm", style=STYLE),
            "final_relu": W.Checkbox(value=False, description="final ReLU", style=STYLE),
            "momentum": W.FloatSlider(value=0.0, min=0.0, max=0.99, step=0.01, description="momentum", style=STYLE),
            "device": W.Dropdown(options=list(runtime.DEVICES), value=device, description="device", style=STYLE),
            "subset": W.Dropdown(options=subsets, value=checks.choice("subset", subset, tuple(n for _, n in subsets)),
                                 description="training images", style=STYLE)}
        self.curves = W.Image(format="png", layout=W.Layout(max_width="760px"))
        self.count_bars = W.Image(format="png", layout=W.Layout(max_width="420px"))
        super().__init__(c, [["preset", "device", "subset"], ["lr", "num_epochs"], ["batch_size", "resize", "dropout"],
                             ["batch_norm", "final_relu", "momentum"]], [W.HBox([self.curves, self.count_bars])])
        c["preset"].observe(lambda change: self.load_preset(change["new"]), names="value")
        c["subset"].observe(lambda change: self.load_preset(c["preset"].value, fields=("num_epochs",)), names="value")
        self.load_preset(preset)

    history = property(lambda self: self.outcome)

    def load_preset(self, name, fields=PANEL_FIELDS):
        """Put a preset's values (of ``fields``) in the controls, with epochs enough for ``MIN_STEPS`` steps."""
        p = presets.get_preset(name)
        steps_per_epoch = math.ceil((self.controls["subset"].value or len(self.fmnist.train_labels)) / p.batch_size)
        values = {field: (p.image_size() if field == "resize" else getattr(p, field)) for field in PANEL_FIELDS}
        values["num_epochs"] = min(50, max(p.num_epochs, math.ceil(MIN_STEPS / steps_per_epoch)))
        for field in fields:
            self.controls[field].value = values[field]

    def settings(self):
        """The preset the controls describe, checked (a bad value raises its ``checks.Refusal``)."""
        v = {name: control.value for name, control in self.controls.items()}
        base = presets.get_preset(v["preset"])
        changes = {field: v[field] for field in PANEL_FIELDS}  # the float sliders' values are floats already
        changes["resize"] = None if base.resize is None and v["resize"] == 28 else v["resize"]
        # 'auto': each epoch tests as many images as it trains (at least 1,000), so a small run is not mostly tests
        total, test_subset = len(self.fmnist.test_labels), self.test_subset
        if test_subset == "auto":
            test_subset = None if v["subset"] is None or v["subset"] >= total else max(min(1000, total), v["subset"])
        return base.with_overrides(**changes, nesterov=base.nesterov and changes["momentum"] > 0, device=v["device"],
                                   subset=v["subset"], test_subset=test_subset)

    def prepare(self):
        """The checked preset; a missing device, too little memory or a CPU run over the time limit are refused."""
        preset = self.settings()
        device = runtime.pick_device(preset.device)
        presets.check_memory(preset, device)
        if device.type == "cpu":
            presets.check_cpu_time(preset, (preset.subset or len(self.fmnist.train_labels)) * preset.num_epochs)
        return preset

    def _run(self, preset, callbacks):
        self.runs += 1
        self.live = viz.LiveCurves(("train loss (batches)", "train loss", "train acc", "test acc"), into=self.curves,
                                   title=f"run {self.runs}, {preset.name}: training curves", dpi=PANEL_DPI, ylim=(0, 2.5),
                                   min_interval=self.redraw_seconds,
                                   xlim=(0, max([preset.num_epochs] + [p.num_epochs for _, p, _ in self.past])))
        self.live.past = [(run_label(n, p, preset), curves) for n, p, curves in reversed(self.past)]
        self.run = presets.build_run(preset, data=self.fmnist)
        self.net = self.run.net
        size = 250 if preset.image_size() <= 28 else 50  # the first test images, fewer where each costs more
        X, y = (torch.cat(t)[:size] for t in zip(*itertools.islice(self.run.test_iter,
                                                                   math.ceil(size / self.run.test_iter.batch_size))))
        self.sample, self.counted_at = [(X, y)], 0
        self.redraw()
        self.status.value = (f"<p><i>training {html.escape(preset.name)} on "
                             f"{html.escape(runtime.describe_device(self.run.device))} …</i></p>")
        history = self.run.fit(callbacks=[train.ProgressBar(False), *callbacks])
        self.live.draw(force=True)
        if history.stopped:  # the NaN guard may have restored earlier weights: count them
            self._draw_counts()
        curves = {name: self.live.points[name] for name in ("train loss", "test acc")}
        self.past = (self.past + [(self.runs, preset, curves)])[-3:]  # the last three runs, drawn on the next
        self.progress.bar_style, color = ("warning", "#b00020") if history.stopped else ("success", "#1b5e20")
        self.status.value = f'<p style="color:{color}">{html.escape(history.summary())}</p>'
        return history

    def on_batch_end(self, run):  # the batch loss on the live curves ten times an epoch, the counts, then the bar
        n = run.num_batches or run.batch
        if run.batch % max(1, n // 10) == 0:
            self.live.add(run.epoch + run.batch / n, {"train loss (batches)": run.loss.item()})
            self.live.draw()
        if time.perf_counter() >= self._next_count:
            self.counted_at = run.epoch + run.batch / n
            self._draw_counts()
        super().on_batch_end(run)

    def on_epoch_end(self, run):  # the epoch's numbers on the curves (a stopped epoch's where it stopped)
        r = run.record
        x = run.epoch + (r["batches"] / (r["num_batches"] or r["batches"]) if r.get("partial") else 1)
        self.live.add(x, {"train loss": r["loss"], "train acc": r["train_acc"], "test acc": r["test_acc"]})
        self.counted_at = x
        self.redraw()
        super().on_epoch_end(run)

    def redraw(self):
        """Draw both pictures now, whatever the time since the last: the curves, and the counts (counted again unless
        another thread is training the net); nothing before the first run."""
        if self.live is not None:
            self.live.draw(force=True)
            self._draw_counts()

    def _draw_counts(self):  # at most once in redraw_seconds or in 9 times what counting took: a tenth of a run
        start = time.perf_counter()
        if not self.running or threading.current_thread() is self.thread:
            p = self.run.preset
            _, y_hat = train.predict(self.run.net, self.sample, self.run.device, amp=p.amp,
                                     channels_last=p.channels_last)  # in eval mode, without gradients
            self.counts = torch.bincount(y_hat, minlength=10)
        self.count_bars.value = _png(self.figure_counts())
        self._next_count = time.perf_counter() + max(self.redraw_seconds, 9 * (time.perf_counter() - start))

    def figure(self):
        """The curves of the last run as a matplotlib figure (for a static notebook output)."""
        return self.live.figure

    def figure_counts(self):
        """How often each class was predicted on the first test images, when last counted (a static output)."""
        fig = viz.prediction_counts(self.counts, title=f"run {self.runs} after {self.counted_at:.2f} epochs")
        plt.close(fig)  # shown where it is put, not again by pyplot
        return fig


# Lesson 06: a tiny live experiment, one run per click, each run a dot beside the recorded grid's seeds
RUN_ONLY = ("name", "description", "seed", "device", "amp", "channels_last", "compile", "threads", "eval_batch_size",
            "subset", "test_subset")  # preset fields that say how a run is carried out, not what it trains
NET_FIELDS = ("arch", "width", "head", "fc_hidden", "num_1x1", "mlp_kernel", "batch_norm", "dropout", "final_relu")


def _value(value):
    return f"{value:,}" if checks.is_whole(value) else f"{value:g}" if isinstance(value, float) else str(value)


def closest_recorded(results, values, test_size):
    """The recorded configuration closest to the panel's ``values`` and how they differ: ('base', [...]) (lesson 06)."""
    mine = {"train_size": values["train_size"], **experiments.live_preset(**values).to_dict(), "test_size": test_size}
    theirs = {name: {**e["preset"], "train_size": e["train_size"], "test_size": e["test_size"]}
              for name, e in results["configs"].items()}
    differ = {name: [key for key in mine if key not in RUN_ONLY and t.get(key) != mine[key]]
              for name, t in theirs.items()}
    name = min(differ, key=lambda n: (sum(key in NET_FIELDS for key in differ[n]), len(differ[n])))  # the net first
    return name, [f"{key} {_value(mine[key])} vs {_value(theirs[name].get(key))}" for key in differ[name]]


class ExperimentPanel(BackgroundRun):
    """Lesson 06's panel: tiny 28-px NiNs (``experiments.live_run``), each run in a table and beside recorded seeds."""

    def __init__(self, fmnist, *, device="cpu", head="gap", dropout=0.5, num_1x1=2, batch_norm=True,
                 train_size=512, num_epochs=10, lr=0.1, seed=0, test_size=500, grid="experiments-cpu"):
        self.fmnist, self.device, self.test_size, self.runs, self.message = fmnist, device, test_size, [], ""
        self.recorded = experiments.recorded(grid)
        controls = {
            "head": W.Dropdown(options=[("GAP (NiN)", "gap"), ("FC head (AlexNet-style)", "fc"),
                                        ("late reduction", "late")], value=head, description="head", style=STYLE),
            "dropout": W.FloatSlider(value=dropout, min=0.0, max=0.9, step=0.1, description="dropout", style=STYLE,
                                     continuous_update=False),
            "num_1x1": _slider(num_1x1, 0, 3, "1×1 convs per block", continuous_update=False),
            "batch_norm": W.Checkbox(value=batch_norm, description="BatchNorm", style=STYLE),
            "train_size": _slider(train_size, 64, 4096, "training images", step=64, continuous_update=False),
            "num_epochs": _slider(num_epochs, 1, 20, "epochs", continuous_update=False),
            "lr": W.FloatText(value=lr, description="peak lr", style=STYLE),
            "seed": W.IntText(value=seed, description="seed", style=STYLE)}
        super().__init__(controls, [["head", "dropout", "num_1x1"], ["batch_norm", "train_size", "num_epochs"],
                                    ["lr", "seed"]], render=self.result_items)

    def result_items(self, **values):
        """The picture for ``values`` (a bad value: its sentence in its place), then the table of runs."""
        if self.recorded is None:  # an installation without the recorded grid: the table alone
            return [HTML(self.view())]
        try:
            picture = self.figure(values)
        except checks.Refusal as error:  # the sentence once, also when Train was pressed with the same value
            problem = message(error)
            return [HTML(("" if problem == self.message else problem) + self.view())]
        return [picture, HTML(self.view())]

    def figure(self, values):
        """The seeds of the recorded configuration closest to ``values``, and this panel's runs of it beside them."""
        name, differences = closest_recorded(self.recorded, values, self.test_size)
        entry = self.recorded["configs"][name]
        runs = [(i, r["test_acc"]) for i, r in enumerate(self.runs, 1) if r["recorded"] == name]
        title = (f"the recorded configuration closest to your settings: {name} ({entry['label']})\n"
                 f"your settings differ: {', '.join(differences) or 'in nothing but the seed'}\n"
                 f"recorded {self.recorded['created'][:10]} on {entry['device']} · your next run: seed "
                 f"{values['seed']}")
        return viz.runs_beside_seeds([r["test_acc"] for r in entry["runs"]], runs, title,
                                     recorded_label=f"recorded: {name}\n({len(entry['runs'])} seeds)",
                                     runs_label=f"your runs\n({len(runs)} of {len(self.runs)})")

    def prepare(self):
        """The current values, checked by ``experiments.live_preset``."""
        values = {name: control.value for name, control in self.controls.items()}
        experiments.live_preset(**values)
        self.message = ""
        return values

    def _run(self, values, callbacks):
        result = experiments.live_run(fmnist=self.fmnist, device=self.device, callbacks=callbacks,
                                      test_size=self.test_size, **values)
        recorded = None if self.recorded is None else closest_recorded(self.recorded, values, self.test_size)[0]
        self.runs.append({**values, **result, "recorded": recorded})
        self.status.value = (f"<p>run {len(self.runs)}: {html.escape(result['epochs_trained'])}, test acc "
                             f"{result['test_acc']:.3f}</p>")
        self._changed()
        return result

    def fail(self, error):
        """Show why a run did not start or finish above the table of runs (not in the status line)."""
        self.message = message(error)
        self._changed()

    def view(self):
        """The panel's result: the message (if any), then each run's settings (its controls) and results in a table."""
        if not self.runs:
            return self.message + "<p>No run yet: choose the settings and press <b>Train</b>.</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in
                       ["#", *self.controls, "parameters", "trained", "train acc", "test acc", "gap", "seconds"])
        body = ""
        for i, r in enumerate(self.runs, 1):
            cells = [str(i)] + [str(r[c]) for c in self.controls] + [
                f"{r['parameters']:,}", r["epochs_trained"], f"{r['train_acc']:.3f}", f"{r['test_acc']:.3f}",
                f"{r['gap']:+.3f}", f"{r['seconds']:.1f}"]
            body += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        return (f"{self.message}<table><tr>{head}</tr>{body}</table>"
                "<p>gap = train accuracy − test accuracy (overfitting)</p>")
