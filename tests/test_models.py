"""The seed's NiN, its variants and the FC-head baseline."""
import pytest
import torch
from torch import nn

from conftest import SEED_LINES
from nin_lib import checks, models, shapes



def seed_net():
    """The seed's code, as the chapter prints it."""
    def nin_block(in_channels, out_channels, kernel_size, strides, padding):
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())

    return nn.Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten())


def test_seed_net_module_for_module():
    assert repr(models.nin()) == repr(seed_net())
    assert models.count_parameters(models.nin()) == 1_992_166


def test_seed_loop_prints_the_seed_lines(capsys):
    net = models.nin()
    X = torch.rand(size=(1, 1, 224, 224))
    for layer in net:
        X = layer(X)
        print(layer.__class__.__name__, 'output shape:\t', X.shape)
    assert capsys.readouterr().out.splitlines() == SEED_LINES
    assert shapes.seed_lines(net) == SEED_LINES


def test_same_weights_same_outputs_as_seed():
    torch.manual_seed(0)
    ours, seed = models.nin().eval(), seed_net().eval()
    seed.load_state_dict(ours.state_dict())
    X = torch.rand(2, 1, 96, 96)
    assert torch.allclose(ours(X), seed(X))


def test_variants():
    bn = models.nin(batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 9  # after each conv of the first 3 blocks
    half = models.nin(width=0.5)
    assert half[0][0].out_channels == 48 and half[2][0].out_channels == 128
    one = models.nin(num_1x1=1)
    assert sum(isinstance(m, nn.Conv2d) for m in one.modules()) == 8
    small = models.nin(arch=28, width=0.25, batch_norm=True)
    assert small(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert shapes.min_input_size(small) < 28


def test_fc_head_has_far_more_parameters_and_same_trunk():
    fc = models.nin(head="fc")
    assert fc(torch.rand(2, 1, 224, 224)).shape == (2, 10)
    n_fc = models.count_parameters(fc)
    assert n_fc == 1_957_376 + 9600 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 10 + 10
    assert n_fc > 25 * models.count_parameters(models.nin())
    assert repr(fc[:6]) == repr(models.nin()[:6])
    fc28 = models.nin(head="fc", arch=28, width=0.25, hidden=256)
    assert fc28(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_xavier_init_changes_only_conv_and_linear_weights():
    torch.manual_seed(0)
    net = models.nin(arch=28, width=0.25, batch_norm=True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    models.init_xavier(net)
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {k for k in before if k.endswith("weight") and after[k].dim() > 1}
    w = net[0][0].weight
    bound = (6 / (w.shape[1] * 25 + w.shape[0] * 25)) ** 0.5
    assert w.abs().max() <= bound


@pytest.mark.parametrize("kwargs, message", [
    (dict(width=0), "width 0 is not allowed"),
    (dict(dropout=1.0), "dropout 1.0 is not allowed"),
    (dict(num_1x1=-1), "num_1x1 -1 is not allowed"),
    (dict(arch=32), "arch 32 is not known"),
    (dict(num_classes=1), "num_classes 1 is not allowed"),
    (dict(in_channels=0), "in_channels 0 is not allowed"),
    (dict(mlp_kernel=2), "mlp_kernel 2 is not known"),
    (dict(head="fc", hidden=0), "hidden 0 is not allowed"),
    (dict(head="fc", input_size=66), "input_size 66 is not allowed; use a whole number of pixels >= 67"),
])
def test_bad_model_arguments(kwargs, message):
    with pytest.raises(checks.Refusal, match=message):
        models.nin(**kwargs)


@pytest.mark.parametrize("args, message", [
    ((0, 96, 11, 4, 0), "in_channels 0 is not allowed"),
    ((1, 0, 11, 4, 0), "out_channels 0 is not allowed"),
    ((1, 96, 0, 4, 0), "kernel_size 0 is not allowed"),
    ((1, 96, -3, 4, 0), "kernel_size -3 is not allowed"),
    ((1, 96, 11, 0, 0), "strides 0 is not allowed"),
    ((1, 96, 11, 4, -1), "padding -1 is not allowed"),
    ((1, 96, 2.5, 4, 0), "kernel_size 2.5 is not allowed"),
])
def test_a_zero_size_or_negative_layer_is_refused(args, message):
    with pytest.raises(checks.Refusal, match=message):
        models.nin_block(*args)


def test_the_smallest_fc_input_is_the_smallest_the_trunk_accepts():
    for arch in (224, 28):
        smallest = shapes.min_input_size(models.nin(arch=arch))
        assert models.nin(head="fc", arch=arch, width=0.25, hidden=8, input_size=smallest)[-1].out_features == 10
        with pytest.raises(checks.Refusal, match=f"input_size {smallest - 1} is not allowed"):
            models.nin(head="fc", arch=arch, input_size=smallest - 1)
