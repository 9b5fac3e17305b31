"""NiN models (lessons 02-06): the seed's ``nin_block`` and ``nin()``, the only place a NiN is made: the seed's net
by default, and through its arguments every variant and head the lessons compare."""
from torch import nn

from . import checks


def nin_block(in_channels, out_channels, kernel_size, strides, padding, *, num_1x1=2, batch_norm=False,
              last_relu=True, mlp_kernel=1):
    """The NiN block (NiN块, lesson 02): one k×k conv then ``num_1x1`` 1×1 convs, each followed by ReLU (and
    BatchNorm2d if asked); the defaults give the seed's block. ``mlp_kernel=3``: 3×3 "1×1" convs (lesson 06)."""
    for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                             ("kernel_size", kernel_size, 1), ("strides", strides, 1), ("padding", padding, 0)):
        checks.whole_number(name, value, low)
    checks.whole_number("num_1x1", num_1x1, 0, 4)
    checks.choice("mlp_kernel", mlp_kernel, (1, 3))
    layers = _conv(in_channels, out_channels, kernel_size, strides, padding, batch_norm)
    for _ in range(num_1x1):
        layers += _conv(out_channels, out_channels, mlp_kernel, 1, mlp_kernel // 2, batch_norm)
    return nn.Sequential(*(layers if last_relu else layers[:-1]))


def _conv(cin, cout, kernel_size, stride, padding, batch_norm):
    """A conv, a BatchNorm2d if asked, and a ReLU (as a list of layers)."""
    bn = [nn.BatchNorm2d(cout)] if batch_norm else []
    return [nn.Conv2d(cin, cout, kernel_size=kernel_size, stride=stride, padding=padding), *bn, nn.ReLU()]


def _late_block(in_channels, num_classes, batch_norm, last_relu):
    """A last block that reduces to the classes only in its last 1×1 conv (lesson 06: not 384 to 10 in one step)."""
    c = in_channels
    layers = [*_conv(c, c, 3, 1, 1, batch_norm), *_conv(c, c, 1, 1, 0, batch_norm),
              *_conv(c, num_classes, 1, 1, 0, False)]
    return nn.Sequential(*(layers if last_relu else layers[:-1]))


# (out_channels, kernel_size, stride, padding) of the three blocks, and the pooling after each.
ARCHS = {
    # the seed's net for 224×224 input (AlexNet-sized first block)
    224: dict(blocks=((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1)), pool=dict(kernel_size=3, stride=2)),
    # a net for native 28×28 input: 28 -> 14 -> 7 -> 4, small enough to train on a CPU
    28: dict(blocks=((96, 5, 1, 2), (192, 3, 1, 1), (384, 3, 1, 1)), pool=dict(kernel_size=3, stride=2, padding=1)),
    # lesson 04's class-map net for 28×28 input: two blocks, 2×2 pooling and 1×1 class maps, so each of the 7×7 map
    # cells sees a 10×10-pixel window (lesson 03's recurrence), not most of the image
    "local": dict(blocks=((32, 3, 1, 1), (64, 3, 1, 1)), pool=dict(kernel_size=2, stride=2), last_kernel=1),
}
HEADS = ("gap", "fc", "late")


def _side_after_trunk(arch, side):
    """The side of the trunk's maps for an input of ``side`` pixels (< 1: too small), by lesson 03's formula."""
    pool = ARCHS[arch]["pool"]
    for _, k, s, p in ARCHS[arch]["blocks"]:
        side = (side + 2 * p - k) // s + 1
        side = (side + 2 * pool.get("padding", 0) - pool["kernel_size"]) // pool["stride"] + 1
    return side


def nin(*, arch=224, width=1.0, batch_norm=False, dropout=0.5, num_1x1=2, final_relu=True, head="gap",
        num_classes=10, in_channels=1, hidden=4096, input_size=None, mlp_kernel=1):
    """NiN (lesson 02): three NiN blocks with pooling, then a head; ``nin()`` is the seed's net module for module.

    ``arch``: 224 (the seed's), 28 (28×28 input) or 'local' (28×28 input, map cells that see 10×10 pixels).
    head 'gap': dropout, a last NiN block with one map per class, global average pooling; 'late': a last block that
    reduces late; 'fc': an AlexNet-style head (two Linear layers of ``hidden`` units) for ``input_size`` pixels.
    ``final_relu=False`` leaves out the ReLU on the class scores, which can make a class dead (lessons 04-05).
    """
    checks.choice("arch", arch, tuple(ARCHS))
    checks.number("width", width, 0, 4, low_open=True)
    checks.number("dropout", dropout, 0, 1, high_open=True)
    checks.whole_number("num_classes", num_classes, 2)
    checks.flag("final_relu", final_relu)
    checks.choice("head", head, HEADS)
    layers, cin = [], in_channels
    for out, k, s, p in ARCHS[arch]["blocks"]:
        out = max(1, round(out * width))
        layers += [nin_block(cin, out, k, s, p, num_1x1=num_1x1, batch_norm=batch_norm, mlp_kernel=mlp_kernel),
                   nn.MaxPool2d(**ARCHS[arch]["pool"])]
        cin = out
    if head == "fc":
        checks.whole_number("hidden", hidden, 1)
        smallest = next(n for n in range(1, 4096) if _side_after_trunk(arch, n) >= 1)
        side = _side_after_trunk(arch, checks.whole_number("input_size", arch if input_size is None else input_size,
                                                          smallest, unit="of pixels"))
        return nn.Sequential(*layers, nn.Flatten(),
                             nn.Linear(cin * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
                             nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                             nn.Linear(hidden, num_classes))
    if head == "late":
        last = _late_block(cin, num_classes, batch_norm, final_relu)
    else:
        k = ARCHS[arch].get("last_kernel", 3)
        last = nin_block(cin, num_classes, k, 1, k // 2, num_1x1=num_1x1, last_relu=final_relu, mlp_kernel=mlp_kernel)
    return nn.Sequential(*layers, nn.Dropout(dropout), last, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


def init_xavier(net):
    """Xavier-uniform init of every Linear and Conv2d weight, as the book's ``train_ch6`` does."""
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    return net


def count_parameters(net, trainable_only=True):
    """Number of (trainable) parameters of a module."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
