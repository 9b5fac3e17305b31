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
