"""Unit tests for what lessons 03 (shape tracing) and 04 (global average pooling) add to nin_lib: shapes.cost
(checked against PyTorch's own counters), adaptive pooling windows, class confidence maps, their plots and panels."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from nin_lib import checks, models, shapes, viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _tiny_nin(**kw):
    torch.manual_seed(0)
    return models.nin(arch=28, width=0.25, **kw)


def _labels(fig):
    """Every title and axis label of a figure (to check that nothing is left unlabelled)."""
    texts = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return " | ".join(texts)


# ---------------------------------------------------------------------------------------------
# shapes.cost (lesson 03's exercise) against PyTorch's FLOP counter and what autograd really keeps

def _measured(net, size, batch_size):
    """(bytes of the tensors autograd saves for backward, FLOPs of forward + backward) of one real step."""
    net.train()
    saved = {}

    def pack(t):
        saved[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    own = {p.untyped_storage().data_ptr() for p in list(net.parameters()) + list(net.buffers())}
    X = torch.rand(batch_size, 1, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(X).sum().backward()
    return sum(v for (ptr, _), v in saved.items() if ptr not in own), counter.get_total_flops()


@pytest.mark.parametrize("make, size, batch_size", [
    (lambda: _tiny_nin(), 28, 2),
    (lambda: _tiny_nin(batch_norm=True), 28, 3),       # BatchNorm keeps per-channel statistics per batch
    (lambda: _tiny_nin(num_1x1=1, dropout=0.0), 40, 1),
    (lambda: models.nin(head="fc", arch=28, width=0.25, hidden=32), 28, 2),
])
def test_cost_matches_what_pytorch_counts(make, size, batch_size):
    net = make()
    c = shapes.cost(net, size, batch_size=batch_size)
    saved_bytes, flops = _measured(net, size, batch_size)
    assert c["activation_bytes"] == saved_bytes
    assert c["train_flops"] == flops
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            net.eval()(torch.rand(batch_size, 1, size, size))
    assert c["predict_flops"] == counter.get_total_flops()


def test_cost_of_the_seed_net():
    c = shapes.cost(models.nin(), 224, batch_size=1)
    assert c["parameters"] == 1_992_166 and c["weights_bytes"] == 4 * 1_992_166
    assert c["macs_per_image"] == 762_297_352
    assert c["train_flops"] == 3 * c["predict_flops"] - 2 * 33_872_256   # the first conv needs no input gradient
    # prediction: weights + the largest input/output pair alive at once (two 96×54×54 maps)
    assert c["predict_bytes"] == 4 * (1_992_166 + 2 * 96 * 54 * 54)
    assert c["activation_bytes"] == 7_677_880        # measured with saved_tensors_hooks (see above)
    sgd, momentum = shapes.cost(models.nin(), 224, 128), shapes.cost(models.nin(), 224, 128, optimizer_slots=1)
    assert momentum["train_bytes"] - sgd["train_bytes"] == 4 * 1_992_166
    assert sgd["train_bytes"] == 4 * 2 * 1_992_166 + 128 * 7_677_880


@pytest.mark.parametrize("kwargs, name", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=1.5), "batch_size"),
    (dict(optimizer_slots=-1), "optimizer_slots"),
    (dict(dtype=torch.int8), "dtype"),
])
def test_cost_rejects_bad_values(kwargs, name):
    with pytest.raises(checks.Refusal, match=name):
        shapes.cost(_tiny_nin(), 28, **kwargs)


# ---------------------------------------------------------------------------------------------
# adaptive pooling windows (lesson 04)

@pytest.mark.parametrize("size, out", [(10, 4), (5, 3), (7, 7), (12, 4), (5, 1), (3, 5)])
def test_adaptive_windows_reproduce_the_real_layer(size, out):
    X = torch.rand(2, 3, size, size)
    windows = shapes.adaptive_windows(size, out)
    by_hand = torch.stack([torch.stack([X[:, :, r0:r1, c0:c1].mean((2, 3)) for c0, c1 in windows], -1)
                           for r0, r1 in windows], -2)
    assert torch.allclose(by_hand, nn.AdaptiveAvgPool2d((out, out))(X), atol=1e-6)


def test_adaptive_windows_figure_shows_overlap():
    fig = viz.adaptive_windows_figure(10, 4)
    labels = _labels(fig)
    assert "10 pixels to 4 cells" in labels and "input position (pixel index)" in labels
    assert "output cell i" in labels and "windows per pixel" in labels
    cover = [p.get_height() for p in fig.axes[1].patches]
    assert cover == [1, 1, 2, 1, 1, 1, 1, 2, 1, 1]   # pixels 2 and 7 are in two windows


@pytest.mark.parametrize("size, out", [(0, 4), (10, 0), (10.5, 4), (10, "4")])
def test_adaptive_windows_figure_rejects_bad_sizes(size, out):
    with pytest.raises(checks.Refusal, match="is not allowed"):
        viz.adaptive_windows_figure(size, out)


# ---------------------------------------------------------------------------------------------
# class confidence maps (lesson 04)

def test_class_maps_average_to_the_logits():
    net = _tiny_nin(batch_norm=True).train()
    X = torch.rand(3, 1, 28, 28)
    maps, logits = viz.class_maps(net, X)
    assert maps.shape == (3, 10, 4, 4) and logits.shape == (3, 10)
    assert net.training                                  # the mode is given back
    with torch.no_grad():
        assert torch.allclose(logits, net.eval()(X))
    assert torch.allclose(maps.mean((2, 3)), logits)     # global average pooling is the mean of each map
    assert (maps >= 0).all()                             # the last block ends with a ReLU


def test_class_maps_needs_global_average_pooling():
    with pytest.raises(checks.Refusal, match="AdaptiveAvgPool2d"):
        viz.class_maps(models.nin(head="fc", arch=28, width=0.25, hidden=8), torch.rand(1, 1, 28, 28))


def test_confidence_figures_are_labelled():
    net = _tiny_nin()
    X = torch.rand(3, 1, 28, 28)
    maps, logits = viz.class_maps(net, X)
    fig = viz.confidence_maps_figure(X[0], maps[0], logits[0], label=4)
    labels = _labels(fig)
    assert "coat ✓" in labels and "x (pixels)" in labels and "4×4 map cells" in labels
    assert len(fig.axes) == 1 + 10 + 1                   # the overlay, ten maps, the colour bar
    fig = viz.confidence_overview(X[:, 0], maps, logits, labels=[0, 1, 2], ncols=2)
    assert "true: trouser" in _labels(fig)
    with pytest.raises(checks.Refusal, match="one name per class"):
        viz.confidence_maps_figure(X[0], maps[0], logits[0], class_names=["a", "b"])
    with pytest.raises(checks.Refusal, match="one logit per class"):
        viz.confidence_maps_figure(X[0], maps[0], logits[0, :5])


def test_the_overlay_puts_each_map_cell_at_its_computed_centre():
    """Lesson 04: the 28-px net's 4×4 cells are centred at x = 0 + 8·i, not stretched to 3.5 + 7·i."""
    X = torch.rand(2, 1, 28, 28)
    maps, logits = viz.class_maps(_tiny_nin(), X)
    for fig in (viz.confidence_maps_figure(X[0], maps[0], logits[0], centres=(0, 8)),
                viz.confidence_overview(X[:, 0], maps, logits, centres=(0, 8))):
        ax = fig.axes[0]
        left, right, bottom, top = ax.images[-1].get_extent()
        assert [left + (right - left) * (2 * i + 1) / 8 for i in range(4)] == [0, 8, 16, 24]
        assert [top + (bottom - top) * (2 * i + 1) / 8 for i in range(4)] == [0, 8, 16, 24]
        assert ax.get_xlim() == (-0.5, 27.5) and ax.get_ylim() == (27.5, -0.5)   # the image's frame, not the map's
    stretched = viz.confidence_maps_figure(X[0], maps[0], logits[0]).axes[0].images[-1].get_extent()
    assert list(stretched) == [-0.5, 27.5, 27.5, -0.5]


def test_size_staircase_needs_one_side_per_size():
    fig = viz.size_staircase([60, 70, 80], {"last map": [None, 1, 1]}, min_size=67)
    assert "input side (pixels)" in _labels(fig)
    with pytest.raises(checks.Refusal, match="one output side per input size"):
        viz.size_staircase([60, 70], {"last map": [1]})


# ---------------------------------------------------------------------------------------------
# widgets (thin panels; need ipywidgets)

def test_input_size_panel_shows_table_or_reason():
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    panel = widgets.input_size_panel(input_size=224)
    html = panel.result()[0].data
    assert "maps are 5×5" in html and "1,992,166" in html and "<table>" in html
    panel.controls["input_size"].value = 66
    message = panel.result()[0].data
    assert "Not possible" in message and "66×66 input is too small" in message and "a bug" not in message
    assert "layer 5" in message and "67×67" in message
    panel.controls["input_size"].value = 67
    panel.controls["depth"].value = "leaf"
    assert "0.0 Conv2d 11×11/4" in panel.result()[0].data


def test_adaptive_windows_panel():
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    panel = widgets.adaptive_windows_panel(size=10, out=4)
    text, fig = panel.result()
    assert "[0, 3), [2, 5), [5, 8), [7, 10)" in text.data and "overlap" in text.data
    panel.controls["size"].value = 12
    assert "kernel 3, stride 3" in panel.result()[0].data


# ---------------------------------------------------------------------------------------------
# receptive field of the class maps and translation (lesson 04)

def test_receptive_field_figure_draws_each_cells_window_at_its_centre():
    image = torch.rand(28, 28)
    fig = viz.receptive_field_figure({"28-px net": (image, 4, 47, 8, 0.0), "224-px net": (torch.rand(224, 224), 5,
                                                                                          195, 32, 33.0)})
    labels = _labels(fig)
    assert "each cell sees 47×47 px, cells 8 px apart" in labels and "each cell sees 195×195 px" in labels
    assert "x (pixels)" in labels and "y (pixels)" in labels
    small, large = fig.axes[0], fig.axes[1]
    fields = [p for p in small.patches if p.get_width() == 47]
    assert [(p.get_x(), p.get_y()) for p in fields] == [(-23.5, -23.5), (0.5, 0.5)]    # cells (0, 0) and (3, 3)
    assert sorted({round(x) for x, _ in small.collections[0].get_offsets()}) == [0, 8, 16, 24]
    assert [(p.get_x(), p.get_width()) for p in large.patches if p.get_width() == 195] == [(-64.5, 195), (63.5, 195)]
    assert small.get_xlim()[0] < -23.5 and small.get_xlim()[1] > 47.5             # the whole window is in view


@pytest.mark.parametrize("panel, cells, match", [
    ((torch.rand(28, 28), 4, 0, 8, 0.0), None, "receptive_field 0 is not allowed"),
    ((torch.rand(28, 28), 4, 47, 2.5, 0.0), None, "stride 2.5 is not allowed"),
    ((torch.rand(28, 28), 4, 47, 8, 0.0), [(4, 0)], "cell row 4 is not allowed; use a whole number from 0 to 3"),
])
def test_receptive_field_figure_rejects_bad_geometry(panel, cells, match):
    with pytest.raises(checks.Refusal, match=match):
        viz.receptive_field_figure({"net": panel}, cells=cells)
    with pytest.raises(checks.Refusal, match="at least one panel"):
        viz.receptive_field_figure({})


def test_shift_scores_figure_draws_one_line_per_class_and_the_fractions():
    shifts = [-2, -1, 0, 1, 2]
    scores = torch.arange(50, dtype=torch.float32).view(5, 10)
    fig = viz.shift_scores_figure(shifts, scores, label=9, fractions={"test accuracy": [0.5, 0.6, 0.7, 0.6, 0.5]})
    labels = _labels(fig)
    assert "shift to the right (pixels; negative: to the left)" in labels and "class score" in labels
    assert "fraction of the test images" in labels
    by_name = {line.get_label(): line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}
    assert len(by_name) == 10
    assert "ankle boot (true)" in by_name and by_name["ankle boot (true)"].get_linewidth() > by_name["bag"].get_linewidth()
    assert list(by_name["trouser"].get_ydata()) == [1, 11, 21, 31, 41]
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [0.5, 0.6, 0.7, 0.6, 0.5]
    assert len(viz.shift_scores_figure(shifts, scores).axes) == 1                 # no fractions: one panel


def test_shift_scores_figure_rejects_mismatched_lengths():
    with pytest.raises(checks.Refusal, match="one row per shift"):
        viz.shift_scores_figure([0, 1, 2], torch.zeros(2, 10))
    with pytest.raises(checks.Refusal, match="'accuracy' has 2 values for 3 shifts"):
        viz.shift_scores_figure([0, 1, 2], torch.zeros(3, 10), fractions={"accuracy": [1, 1]})
    with pytest.raises(checks.Refusal, match="one name per class"):
        viz.shift_scores_figure([0, 1], torch.zeros(2, 3))


# ---------------------------------------------------------------------------------------------
# lesson 03's view: point at a cell; lesson 04's: class maps of a moved image

def test_cell_field_and_side_follow_the_recurrence_and_the_trace():
    net = models.nin().to("meta")
    for layer in (0, 1, 2, 3, 4, 5, 7):
        chain = shapes.windows(net, layer)
        first, last = shapes.cell_field(chain, 0)
        row = shapes.trace(net, 224)[layer]
        assert last - first + 1 == row.receptive_field
        assert shapes.side_after(chain, 224) == row.output_shape[-1]
    assert shapes.side_after(shapes.windows(net, 7), 66) < 1 <= shapes.side_after(shapes.windows(net, 7), 67)


def test_influence_is_the_gradient_of_an_equal_weight_probe():
    net = models.nin(arch=28, width=0.25).eval()
    for i, layer in enumerate(net):
        if isinstance(layer, nn.MaxPool2d):
            net[i] = nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0) if p.dim() > 1 else p.zero_()
    X = torch.ones(1, 1, 28, 28, requires_grad=True)
    net[:4](X)[0, :, 1, 2].sum().backward()
    chain = shapes.windows(net, 3)
    influence = shapes.influence(chain, 28, 1, 2)
    assert torch.allclose(influence, X.grad[0, 0] / X.grad.sum(), atol=1e-6)
    rows, cols = influence.sum(1).nonzero().flatten(), influence.sum(0).nonzero().flatten()
    (r0, r1), (c0, c1) = shapes.cell_field(chain, 1), shapes.cell_field(chain, 2)
    assert (int(rows.min()), int(rows.max())) == (max(r0, 0), min(r1, 27))
    assert (int(cols.min()), int(cols.max())) == (max(c0, 0), min(c1, 27))


@pytest.mark.parametrize("control, value", [("layer", 2), ("row", 3), ("col", 1), ("input_size", 100)])
def test_receptive_field_panel_every_control_changes_the_picture(control, value):
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    from conftest import png
    panel = widgets.receptive_field_panel(models.nin().to("meta"), torch.rand(28, 28), layer=7, row=2, col=2)
    (before,) = panel.result()
    panel.controls[control].value = value
    (after,) = panel.result()
    assert png(after) != png(before)


def test_receptive_field_panel_sliders_follow_the_layers_map_and_bad_values_are_one_sentence():
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    panel = widgets.receptive_field_panel(models.nin().to("meta"), torch.rand(28, 28), layer=0, row=40, col=3)
    panel.result()
    assert panel.controls["row"].max == 53                       # block 1's 54×54 map
    panel.controls["layer"].value = 7
    (fig,) = panel.result()
    assert panel.controls["row"].max == 4 and "cell (4, 3) of its 5×5 map sees 195×195" in fig._suptitle.get_text()
    assert [label for label, _ in panel.controls["layer"].options][1] == "1: MaxPool2d 3×3/2"
    with pytest.raises(checks.Refusal, match="image side 50"):
        widgets.receptive_field_panel(models.nin().to("meta"), torch.rand(28, 28), input_size=50)
    with pytest.raises(checks.Refusal, match="layer 6"):
        widgets.receptive_field_panel(models.nin().to("meta"), torch.rand(28, 28), layer=6)   # dropout: no window


def test_shift_moves_the_pixels_and_fills_with_zero():
    from nin_lib import data
    X = torch.arange(1, 17.0).reshape(1, 1, 4, 4)
    moved = data.shift(X, 1, -2)
    assert torch.equal(moved[0, 0, :2, 1:], X[0, 0, 2:, :3]) and (moved[0, 0, 2:] == 0).all()
    assert (moved[0, 0, :, 0] == 0).all() and torch.equal(data.shift(X, 0, 0), X)
    with pytest.raises(checks.Refusal, match="shift right 4"):
        data.shift(X, 4)


@pytest.mark.parametrize("control, value", [("index", 2), ("dx", 3), ("dy", -2)])
def test_class_maps_panel_every_control_changes_the_picture(control, value):
    pytest.importorskip("ipywidgets")
    from nin_lib import widgets
    from conftest import png
    X, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    panel = widgets.class_maps_panel(_tiny_nin(), X, y, index=1)
    (before,) = panel.result()
    assert "test image 1, not moved" in _labels(before) and "trouser ✓" in _labels(before)
    panel.controls[control].value = value
    (after,) = panel.result()
    assert png(after) != png(before)


def test_class_maps_panel_scores_are_the_means_of_the_moved_images_maps():
    pytest.importorskip("ipywidgets")
    from nin_lib import data, widgets
    net, X, y = _tiny_nin(), torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    panel = widgets.class_maps_panel(net, X, y, index=2, dx=5, dy=1)
    (fig,) = panel.result()
    bars = [p.get_height() for p in fig.axes[-1].patches]
    ticks = fig.axes[-1].lines[0].get_ydata()
    with torch.no_grad():
        assert bars == pytest.approx(net.eval()(data.shift(X[2:3], 5, 1))[0].tolist(), abs=1e-5)
        assert list(ticks) == pytest.approx(net.eval()(X[2:3])[0].tolist(), abs=1e-5)   # the unshifted scores
    assert "moved +5 px right, +1 px down" in _labels(fig)
    with pytest.raises(checks.Refusal, match="image index 4"):
        widgets.class_maps_panel(net, X, y, index=4)
