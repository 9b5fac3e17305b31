"""Unit tests for what lessons 01 (1×1 convolutions) and 02 (NiN blocks) add to nin_lib:
shapes.conv_cost / layer_parameters / nin_parameter_breakdown, their plots and their widget panels."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from conftest import png  # noqa: E402
from nin_lib import checks, models, shapes, viz  # noqa: E402

SEED_NIN_PARAMS = 1_992_166
FC_HEAD_PARAMS = 58_105_354


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# shapes.conv_cost

def test_conv_cost_of_a_1x1_conv_is_that_of_a_linear_layer():
    cost = shapes.conv_cost(96, 32, 1, input_size=54)
    assert cost["parameters"] == 96 * 32 + 32 == models.count_parameters(nn.Linear(96, 32))
    assert cost["output_shape"] == (32, 54, 54)
    assert cost["macs"] == 32 * 54 * 54 * 96


@pytest.mark.parametrize("c_in, c_out, k, size, stride, padding", [
    (1, 96, 11, 224, 4, 0),   # the seed's first conv
    (96, 256, 5, 26, 1, 2),
    (3, 8, 3, 7, 2, 1),
    (4, 4, 2, 5, 3, 0),       # floor in the output size: (5 - 2) // 3 + 1 = 2
])
def test_conv_cost_matches_pytorch_and_trace(c_in, c_out, k, size, stride, padding):
    layer = nn.Conv2d(c_in, c_out, k, stride, padding)
    cost = shapes.conv_cost(c_in, c_out, k, input_size=size, stride=stride, padding=padding)
    with torch.device("meta"):
        out = layer.to("meta")(torch.zeros(1, c_in, size, size))
    traced = shapes.trace(layer, size, in_channels=c_in, depth="leaf")
    assert cost["output_shape"] == tuple(out.shape[1:])
    assert cost["parameters"] == models.count_parameters(layer) == traced.params
    assert cost["weights"] + cost["biases"] == cost["parameters"]
    assert cost["macs"] == traced.macs


def test_conv_cost_without_bias():
    cost = shapes.conv_cost(8, 4, 3, input_size=10, bias=False)
    assert cost["biases"] == 0
    assert cost["parameters"] == 8 * 4 * 9 == models.count_parameters(nn.Conv2d(8, 4, 3, bias=False))


def test_conv_cost_kernel_larger_than_input_names_sizes():
    with pytest.raises(shapes.InputSizeError, match=r"11×11.*5×5 input"):
        shapes.conv_cost(1, 1, 11, input_size=5)
    # padding makes it fit
    assert shapes.conv_cost(1, 1, 11, input_size=5, padding=3)["output_shape"] == (1, 1, 1)


@pytest.mark.parametrize("kwargs, name", [
    (dict(in_channels=0), "in_channels"),
    (dict(out_channels=-3), "out_channels"),
    (dict(kernel_size=1.5), "kernel_size"),
    (dict(stride=0), "stride"),
    (dict(padding=-1), "padding"),
    (dict(input_size=True), "input_size"),
])
def test_conv_cost_rejects_bad_values(kwargs, name):
    args = dict(in_channels=3, out_channels=4, kernel_size=3, input_size=8)
    args.update(kwargs)
    with pytest.raises(checks.Refusal, match=f"{name} .* is not allowed"):
        shapes.conv_cost(**args)


# ---------------------------------------------------------------------------------------------
# shapes.layer_parameters and nin_parameter_breakdown

def test_layer_parameters_lists_layers_with_parameters_in_order():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU()),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    rows = shapes.layer_parameters(net, input_size=8)
    assert [r[0] for r in rows] == ["0", "2.0", "5"]
    assert [r[2] for r in rows] == [40, 10, 9]
    assert sum(r[2] for r in rows) == models.count_parameters(net)


def test_breakdown_of_the_seed_net_and_the_fc_head():
    gap = shapes.nin_parameter_breakdown("gap")
    fc = shapes.nin_parameter_breakdown("fc")
    assert gap["total"] == SEED_NIN_PARAMS and fc["total"] == FC_HEAD_PARAMS
    assert gap["trunk"] == fc["trunk"]                       # same trunk, different heads
    assert gap["head"] == 34_790
    assert [r[1] for r in fc["rows"] if r[3] == "head"] == ["Linear 9600→4096", "Linear 4096→4096",
                                                            "Linear 4096→10"]
    assert all(r[1].startswith("Conv2d") for r in gap["rows"])
    assert len(gap["rows"]) == 12 and sum(r[3] == "head" for r in gap["rows"]) == 3


def test_breakdown_follows_the_options():
    assert shapes.nin_parameter_breakdown("gap", num_1x1=0)["total"] == 1_546_058
    assert shapes.nin_parameter_breakdown("gap", num_1x1=0)["total"] < SEED_NIN_PARAMS
    small = shapes.nin_parameter_breakdown("fc", width=0.25, hidden=64, arch=28)
    with torch.device("meta"):
        net = models.nin(head="fc", width=0.25, hidden=64, arch=28)
    assert small["total"] == models.count_parameters(net)


def test_breakdown_rejects_bad_options():
    with pytest.raises(checks.Refusal, match="head 'mlp'"):
        shapes.nin_parameter_breakdown("mlp")
    with pytest.raises(checks.Refusal, match="num_1x1"):
        shapes.nin_parameter_breakdown("gap", num_1x1=7)


# ---------------------------------------------------------------------------------------------
# viz

def test_feature_maps_labels_and_mark():
    fig = viz.feature_maps([torch.rand(6, 6), -torch.rand(6, 6)], ["a", "b"], title="maps", mark=(1, 2))
    axes = [ax for ax in fig.axes if ax.get_title() in ("a", "b")]
    assert len(axes) == 2
    assert all(ax.get_xlabel() == "x (pixels)" and ax.get_ylabel() == "y (pixels)" for ax in axes)
    assert all(len(ax.patches) == 1 for ax in axes)          # the marked pixel
    assert axes[1].images[0].get_clim()[0] < 0               # signed map: diverging scale around 0
    assert fig._suptitle.get_text() == "maps"


def test_feature_maps_rejects_bad_input():
    with pytest.raises(checks.Refusal, match="2-D"):
        viz.feature_maps([torch.rand(2, 6, 6)])
    with pytest.raises(checks.Refusal, match="2 titles for 1 maps"):
        viz.feature_maps([torch.rand(6, 6)], ["a", "b"])


def test_draw_vgg_vs_nin_has_both_nets():
    fig = viz.draw_vgg_vs_nin()
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"VGG", "NiN", "global average pooling"} <= texts
    assert fig.axes[0].get_title()


def test_parameter_shares_stacks_each_net_in_millions_and_in_percent():
    gap, fc = shapes.nin_parameter_breakdown("gap"), shapes.nin_parameter_breakdown("fc")
    fig = viz.parameter_shares({"NiN": gap, "FC": fc}, title="t", mark="FC")
    millions, shares = fig.axes
    assert "linear scale" in millions.get_xlabel() and "%" in shares.get_xlabel()
    for ax, ends in ((millions, [SEED_NIN_PARAMS / 1e6, FC_HEAD_PARAMS / 1e6]), (shares, [100, 100])):
        assert len(ax.patches) == len(gap["rows"]) + len(fc["rows"])      # one segment per layer
        bars = ax.patches[:len(gap["rows"])], ax.patches[len(gap["rows"]):]
        assert [max(p.get_x() + p.get_width() for p in bar) for bar in bars] == pytest.approx(ends)
        assert sum(p.get_hatch() == "//" for p in ax.patches) == 6          # the heads' layers, 3 in each net
    assert {t.get_text() for t in shares.texts} == {"Conv2d 5×5/1, 96→256\n31%", "Conv2d 3×3/1, 256→384\n44%",
                                                    "Linear 9600→4096\n68%", "Linear 4096→4096\n29%"}
    assert [(t.get_text(), t.get_fontweight()) for t in millions.get_yticklabels()] == [("NiN", "normal"),
                                                                                       ("FC", "bold")]
    with pytest.raises(checks.Refusal, match="at least one net"):
        viz.parameter_shares({})


# ---------------------------------------------------------------------------------------------
# widgets (thin panels; need ipywidgets)

def test_conv_cost_panel_updates_and_reports_bad_settings():
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    panel = widgets.conv_cost_panel(in_channels=96, out_channels=96, kernel_size=1, input_size=54)
    first, _ = panel.result()
    assert "9,312" in first.data and "96 × 54 × 54" in first.data
    panel.controls["kernel_size"].value = 3
    assert "83,040" in panel.result()[0].data           # 96·96·9 + 96
    panel.controls["kernel_size"].value = 11
    panel.controls["input_size"].value = 5
    (shown,) = panel.result()                            # the sentence only, no bars
    message = shown.data
    assert "Not possible" in message and "5×5 input" in message and "a bug" not in message
    panel._changed()                                     # no display handles outside a notebook: no crash


class Handle:
    """An IPython display handle that remembers what it was updated with."""
    def __init__(self):
        self.shown = []

    def update(self, item):
        self.shown.append(item)


@pytest.mark.parametrize("error, heading, text", [
    (checks.refuse("width 3 is not allowed"), "Not possible:", "width 3 is not allowed."),
    (ValueError("a plain ValueError inside the library"), "Error (a bug):",
     "ValueError: a plain ValueError inside the library"),
    (ZeroDivisionError("division by zero"), "Error (a bug):", "ZeroDivisionError: division by zero"),
])
def test_a_result_panel_shows_a_refusal_as_one_sentence_and_any_other_error_as_a_bug(error, heading, text):
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets

    def render(width):
        if width == 3:
            raise error
        return [widgets.HTML(f"<p>width {width}</p>"), plt.figure()]

    panel = widgets.ResultPanel({"width": widgets._slider(1, 1, 4, "width")}, render)
    panel.handles = [Handle(), Handle()]                 # as after displaying the panel: a table and a figure
    panel.controls["width"].value = 3                    # the panel redraws; nothing is raised
    (shown,) = panel.result()
    assert heading in shown.data and text in shown.data and shown.data.count("<p") == 1
    table, figure = (h.shown[-1] for h in panel.handles)
    assert table.data == shown.data and figure.data == ""  # the last figure is taken away, not left stale
    panel.controls["width"].value = 2
    assert [type(h.shown[-1]) for h in panel.handles] == [widgets.HTML, widgets.Image]   # the figure, drawn once
    assert panel.handles[1].shown[-1].data.startswith(b"\x89PNG")
    assert not plt.get_fignums()                         # the panel's figures are closed: pyplot shows none twice


def test_nin_params_panel_describes_the_chosen_net():
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    panel = widgets.nin_params_panel()
    table, fig = panel.result()
    assert isinstance(fig, plt.Figure) and fig.number not in plt.get_fignums()
    assert f"{SEED_NIN_PARAMS:,}  (1.00 × the seed" in table.data
    panel.controls["head"].value = "fc"
    table, fig = panel.result()
    assert f"{FC_HEAD_PARAMS:,}" in table.data and "FC head (4,096 hidden)" in table.data


@pytest.mark.parametrize("control, value", [("head", "fc"), ("hidden", 512), ("num_1x1", 3), ("width", 0.5)])
def test_nin_params_panel_every_control_changes_the_picture(control, value):
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    panel = widgets.nin_params_panel()
    before = png(panel.result()[1])
    panel.controls[control].value = value
    assert png(panel.result()[1]) != before


@pytest.mark.parametrize("hidden", [0, 8193])
def test_nin_params_panel_says_a_bad_value_in_one_sentence(hidden):
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    panel = widgets.nin_params_panel()
    panel.controls["hidden"].value = hidden
    (shown,) = panel.result()
    assert "Not possible" in shown.data and f"hidden units {hidden}" in shown.data and shown.data.count("<p") == 1
    panel._changed()                                     # no display handles outside a notebook: no crash


@pytest.mark.parametrize("kwargs, says", [(dict(head="mlp"), "head 'mlp'"), (dict(num_1x1=7), "num_1x1 7"),
                                          (dict(width=3.0), "width 3.0"), (dict(hidden=-1), "hidden units -1")])
def test_nin_params_panel_refuses_a_bad_starting_value(kwargs, says):
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    with pytest.raises(checks.Refusal, match=says):
        widgets.nin_params_panel(**kwargs)


# ---------------------------------------------------------------------------------------------
# lesson 01's views: one pixel through a 1×1 conv, and the cost bars

def _first_block():
    torch.manual_seed(0)
    return models.nin_block(1, 6, kernel_size=3, strides=1, padding=1, num_1x1=1)   # conv, ReLU, 1×1 conv, ReLU


def test_one_pixel_figure_draws_y_as_w_x_plus_b_beside_the_convs_own_output():
    block, X = _first_block(), torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        x = block[:2](X)[0]
        y = block[2](x[None])[0]
    fig = viz.one_pixel_figure(X[0, 0], x, y, block[2].weight[:, :, 0, 0], block[2].bias, (3, 7))
    ax_x, ax_w, ax_y = fig.axes[1:4]
    assert [p.get_height() for p in ax_x.patches] == pytest.approx(x[:, 3, 7].tolist())
    assert [p.get_width() for p in ax_y.patches] == pytest.approx(y[:, 3, 7].tolist(), abs=1e-6)   # W·x + b
    assert ax_y.lines[0].get_xdata() == pytest.approx(y[:, 3, 7].tolist())                      # the conv's dots
    assert ax_w.images[0].get_array().shape == (6, 6)
    assert "at pixel (3, 7)" in fig._suptitle.get_text() and "e-0" in fig._suptitle.get_text()


@pytest.mark.parametrize("control, value", [("index", 2), ("row", 3), ("col", 9)])
def test_one_pixel_panel_every_control_changes_the_picture(control, value):
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    block = _first_block()
    panel = widgets.one_pixel_panel(block[:2], block[2], torch.rand(4, 1, 12, 12), index=0, row=6, col=6)
    (before,) = panel.result()
    panel.controls[control].value = value
    (after,) = panel.result()
    assert png(after) != png(before)


def test_one_pixel_panel_says_a_bad_value_in_one_sentence():
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    block = _first_block()
    halved = nn.Sequential(*block[:2], nn.MaxPool2d(2))        # 12×12 images give 6×6 maps: row 8 is past the edge
    panel = widgets.one_pixel_panel(halved, block[2], torch.rand(4, 1, 12, 12), row=8, col=2)
    (shown,) = panel.result()
    assert "Not possible" in shown.data and "pixel row 8" in shown.data and shown.data.count("<p") == 1
    with pytest.raises(checks.Refusal, match="1×1 conv"):
        widgets.one_pixel_panel(block[:1], block[0], torch.rand(4, 1, 12, 12))
    with pytest.raises(checks.Refusal, match="image index 4"):
        widgets.one_pixel_panel(block[:2], block[2], torch.rand(4, 1, 12, 12), index=4)


@pytest.mark.parametrize("control, value", [("in_channels", 64), ("out_channels", 32), ("kernel_size", 3),
                                            ("input_size", 30), ("stride", 2), ("padding", 1)])
def test_conv_cost_panel_every_control_changes_the_bars(control, value):
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    panel = widgets.conv_cost_panel(in_channels=96, out_channels=96, kernel_size=1, input_size=54)
    before = png(panel.result()[1])
    panel.controls[control].value = value
    table, fig = panel.result()
    assert png(fig) != before
    counts = [int(t.get_text().strip().replace(",", "")) for t in fig.axes[0].texts + fig.axes[1].texts]
    assert all(f"{c:,}" in table.data for c in counts)          # the bars say the table's numbers
    assert fig.axes[0].get_xscale() == "linear"
