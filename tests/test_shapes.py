"""Shape tracing: the formula, the tables, MACs, receptive field, the smallest valid input, inputs that do not fit."""
import random

import pytest
import torch
from torch import nn

from nin_lib import checks, models, shapes


def test_formula_against_real_layers():
    rng = random.Random(0)
    for _ in range(300):
        k, s, p, d = rng.randint(1, 7), rng.randint(1, 4), rng.randint(0, 3), rng.randint(1, 2)
        n = rng.randint(1, 40)
        kind = rng.choice(["conv", "max", "avg", "max_ceil"])
        if kind != "conv" and (p > k // 2):
            p = k // 2
        if kind == "conv":
            layer = nn.Conv2d(1, 1, k, s, p, dilation=d)
        elif kind == "avg":
            d = 1
            layer = nn.AvgPool2d(k, s, p)
        else:
            layer = nn.MaxPool2d(k, s, p, dilation=d, ceil_mode=kind == "max_ceil")
        expected = shapes.spatial_out(n, k, s, p, d, ceil_mode=kind == "max_ceil")
        try:
            real = layer(torch.zeros(1, 1, n, n)).shape[-1]
        except RuntimeError:
            real = 0  # PyTorch refuses: the input is too small
        assert max(expected, 0) == real, (kind, n, k, s, p, d)


def test_seed_example_floor():
    assert (224 - 11) / 4 + 1 == 54.25
    assert shapes.spatial_out(224, 11, 4, 0) == 54


def test_adaptive_windows_match_the_real_layer():
    X = torch.arange(7.0).view(1, 1, 1, 7)
    windows = shapes.adaptive_windows(7, 3)
    assert windows == [(0, 3), (2, 5), (4, 7)]
    real = nn.AdaptiveAvgPool2d((1, 3))(X).flatten().tolist()
    assert real == [X[0, 0, 0, a:b].mean().item() for a, b in windows]


def test_min_input_size_of_seed_net():
    net = models.nin()
    assert shapes.min_input_size(net) == 67
    shapes.check_input_size(net, 67)
    net(torch.zeros(1, 1, 67, 67))  # really runs
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 1, 66, 66))  # and PyTorch agrees that 66 fails
    with pytest.raises(shapes.InputSizeError) as info:
        shapes.trace(net, 66)
    assert isinstance(info.value, checks.Refusal)
    message = str(info.value)
    assert "a 66×66 input is too small" in message and "layer 5 (MaxPool2d 3×3/2) gets a 2×2 map" in message
    assert "the smallest input it accepts is 67×67." in message
    assert shapes.trace(net, 67)[7].output_shape == (1, 10, 1, 1)  # the last block gets a 1×1 map


@pytest.mark.parametrize("net, size", [
    (models.nin(arch=28), None), (models.nin(width=0.5, num_1x1=0), None), (models.nin(arch=28, num_1x1=1), None)])
def test_min_input_size_is_tight_for_variants(net, size):
    m = shapes.min_input_size(net)
    net.eval()(torch.zeros(1, 1, m, m))
    with pytest.raises((RuntimeError, ValueError)):
        if m == 1:
            raise ValueError("1 pixel is the smallest possible input")
        net(torch.zeros(1, 1, m - 1, m - 1))


@pytest.mark.parametrize("size, says", [(100, "a 100×100 input is too small"), (227, "a 227×227 input is too large"),
                                         ((100, 300), "a 100×300 input does not fit")])
def test_fc_head_accepts_only_a_band_and_says_too_small_or_too_large(size, says):
    net = models.nin(head="fc", hidden=8)
    with pytest.raises(shapes.InputSizeError) as info:
        shapes.check_input_size(net, size)
    assert says in str(info.value) and "layer 7 (Linear 9600→8) expects 9,600 features" in str(info.value)
    assert "it accepts only inputs from 195×195 to 226×226" in str(info.value)
    net(torch.zeros(1, 1, 226, 226))  # the band's ends really run
    net(torch.zeros(1, 1, 195, 195))


@pytest.mark.parametrize("shape", [(1, 3, 224, 224), torch.Size([8, 3, 96, 96])])
def test_an_input_with_other_channels_names_both_counts(shape):
    net = models.nin()
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 3, 96, 96))  # PyTorch's own error, which the sentence replaces
    with pytest.raises(shapes.InputSizeError) as info:
        shapes.check_input_size(net, shape)
    assert "a 3-channel input" in str(info.value) and "takes 1-channel images" in str(info.value)
    assert "in_channels=3" in str(info.value)


def test_layers_whose_channels_do_not_chain_are_named():
    net = nn.Sequential(models.nin_block(1, 96, 11, 4, 0), models.nin_block(64, 10, 3, 1, 1))
    with pytest.raises(checks.Refusal, match=r"layer 1\.0 \(Conv2d 3×3/1, 64→10\) takes 64 channels but gets 96"):
        shapes.trace(net, 224)


def test_trace_table():
    t = shapes.trace(models.nin(), 224)
    assert [r.output_shape for r in t][:2] == [(1, 96, 54, 54), (1, 96, 26, 26)]
    assert t.params == 1_992_166
    # MACs of the first conv: 96 maps of 54×54, each output sums 11×11×1 products
    leaf = shapes.trace(models.nin(), 224, depth="leaf")
    assert leaf[0].macs == 96 * 54 * 54 * 121
    assert leaf[2].macs == 96 * 54 * 54 * 96
    assert t.macs == leaf.macs == sum(r.macs for r in leaf)
    assert [r.receptive_field for r in t][:4] == [11, 19, 51, 67]
    text = str(t)
    assert "1,992,166" in text and "1×96×54×54" in text
    assert "<table>" in t._repr_html_() and "1,992,166" in t._repr_html_()


def test_receptive_field_against_gradients():
    """The receptive field column equals the span of input pixels that reach the centre output."""
    net = nn.Sequential(nn.Conv2d(1, 1, 3, 1, 0), nn.AvgPool2d(2, 2), nn.Conv2d(1, 1, 3, 2, 0))
    t = shapes.trace(net, 32, depth="leaf")
    X = torch.rand(1, 1, 32, 32, requires_grad=True)
    out = net(X)
    out[0, 0, 2, 2].backward()
    rows = X.grad[0, 0].abs().sum(1).nonzero().flatten()
    assert t[-1].receptive_field == int(rows.max() - rows.min() + 1) == 3 + 1 * 1 + 2 * 2


def test_cost_numbers():
    c = shapes.cost(models.nin(), 224, batch_size=128)
    assert c["parameters"] == 1_992_166
    assert c["predict_flops"] == 2 * c["macs_per_image"] * 128
    # 3× the forward pass, less the first conv's input gradient (the images need none): 2·33,872,256 per image
    assert c["train_flops"] == 3 * c["predict_flops"] - 2 * 33_872_256 * 128
    assert c["train_bytes"] > c["predict_bytes"] > c["weights_bytes"] == 4 * 1_992_166


@pytest.mark.parametrize("bad", [0, -5, 2.5, "224", True])
def test_bad_input_size(bad):
    with pytest.raises(checks.Refusal, match=f"input size {bad!r} is not allowed; use a whole number of pixels"):
        shapes.trace(models.nin(), bad)
