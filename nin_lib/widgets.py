"""ipywidgets panels (7.7 and 8; the only module importing ipywidgets): a bad value is one sentence, never a crash."""
import html
import math
import threading

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from IPython.display import HTML, display

from . import checks, experiments, models, presets, runtime, shapes, train, viz

STYLE = {"description_width": "initial"}


def message(error):
    """An exception as one red HTML line: a ``checks.Refusal`` is not possible, anything else is a bug."""
    if isinstance(error, checks.Refusal):
        return f'<p style="color:#b00020"><b>Not possible:</b> {html.escape(str(error))}</p>'
    return f'<p style="color:#b00020"><b>Error (a bug):</b> {html.escape(f"{type(error).__name__}: {error}")}</p>'


# Lessons 01-06: panels whose results are ordinary notebook outputs
class ResultPanel:
    """Rows of controls, widgets ``below``, then ``render(**values)``'s HTML and figures as outputs (lessons 01-06)."""

    def __init__(self, controls, render, rows=None, below=()):
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
        items = self.result()
        for handle, item in zip(self.handles, items + [HTML("")] * (len(self.handles) - len(items))):
            if handle is not None:  # None outside IPython
                handle.update(item)

    def _ipython_display_(self):
        display(self.box)
        self.handles = [display(item, display_id=True) for item in self.result()]


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
        return [HTML(_table(rows))]

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


def confidence_maps_view(net, images, labels, index=0, class_names=None, centres=None):
    """The confidence-map panel's result (lesson 04): one test image with all its class maps."""
    checks.whole_number("image index", index, 0, len(images) - 1)
    X = images[index:index + 1]
    maps, logits = viz.class_maps(net, X.to(next(net.parameters()).device))
    return [viz.confidence_maps_figure(X[0], maps[0], logits[0], label=int(labels[index]), class_names=class_names,
                                       centres=centres, title=f"test image {index}: class confidence maps (one per "
                                                              "class) and their means")]


def confidence_maps_panel(net, images, labels, index=0, class_names=None, centres=None):
    """Pick one of ``images`` (N, 1, H, W) in [0, 1]: every class's map and which class wins (lesson 04)."""
    controls = {"index": _slider(index, 0, len(images) - 1, "test image", continuous_update=False)}
    return ResultPanel(controls, lambda index: confidence_maps_view(net, images, labels, index, class_names, centres))


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
PANEL_FIELDS = ("lr", "num_epochs", "batch_size", "resize", "dropout", "batch_norm", "momentum")
MIN_STEPS = 100  # a preset's settings train at least this many steps, so that even 1,000 images learn


class TrainingPanel(BackgroundRun):
    """Lesson 05's panel: a preset, its values, Train and Stop, live curves; then ``net`` and ``history`` hold it."""

    def __init__(self, fmnist, *, preset="quick", device="auto", subset=10000, test_subset="auto", redraw_seconds=1.0):
        self.fmnist, self.test_subset, self.redraw_seconds = fmnist, test_subset, redraw_seconds
        self.net, self.run, self.live = None, None, None
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
            "momentum": W.FloatSlider(value=0.0, min=0.0, max=0.99, step=0.01, description="momentum", style=STYLE),
            "device": W.Dropdown(options=list(runtime.DEVICES), value=device, description="device", style=STYLE),
            "subset": W.Dropdown(options=subsets, value=checks.choice("subset", subset, tuple(n for _, n in subsets)),
                                 description="training images", style=STYLE)}
        self.curves = W.Image(format="png", layout=W.Layout(max_width="760px"))
        super().__init__(c, [["preset", "device", "subset"], ["lr", "num_epochs"], ["batch_size", "resize", "dropout"],
                             ["batch_norm", "momentum"]], [self.curves])
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
        self.live = viz.LiveCurves(("train loss (batches)", "train loss", "train acc", "test acc"), into=self.curves,
                                   title=f"{preset.name}: training curves", min_interval=self.redraw_seconds, dpi=80,
                                   xlim=(0, preset.num_epochs), ylim=(0, 2.5))
        self.run = presets.build_run(preset, data=self.fmnist)
        self.net = self.run.net
        self.status.value = (f"<p><i>training {html.escape(preset.name)} on "
                             f"{html.escape(runtime.describe_device(self.run.device))} …</i></p>")
        history = self.run.fit(callbacks=[train.ProgressBar(False), *callbacks])
        self.live.draw(force=True)
        self.progress.bar_style, color = ("warning", "#b00020") if history.stopped else ("success", "#1b5e20")
        self.status.value = f'<p style="color:{color}">{html.escape(history.summary())}</p>'
        return history

    def on_batch_end(self, run):  # the batch loss on the live curves ten times an epoch, then the bar
        n = run.num_batches or run.batch
        if run.batch % max(1, n // 10) == 0:
            self.live.add(run.epoch + run.batch / n, {"train loss (batches)": run.loss.item()})
            self.live.draw()
        super().on_batch_end(run)

    def on_epoch_end(self, run):  # the epoch's numbers on the curves (a stopped epoch's where it stopped)
        r = run.record
        x = run.epoch + (r["batches"] / (r["num_batches"] or r["batches"]) if r.get("partial") else 1)
        self.live.add(x, {"train loss": r["loss"], "train acc": r["train_acc"], "test acc": r["test_acc"]})
        self.live.draw(force=True)
        super().on_epoch_end(run)

    def figure(self):
        """The curves of the last run as a matplotlib figure (for a static notebook output)."""
        return self.live.figure


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
