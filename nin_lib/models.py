"""NiN models (lessons 02-06): the seed's ``nin_block`` and net, and every variant the lessons compare.

``nin()`` is the only place a NiN is made: the seed's net by default, and through its arguments the
variants (width, BatchNorm, dropout, the number of 1×1 convs, no ReLU on the class scores, the 28-px
input) and the heads (``head='gap'``: NiN's last block and global average pooling; ``'fc'``: an
AlexNet-style fully connected head; ``'late'``: a last block that reduces to the classes late).
"""
import copy

import torch
from torch import nn

from . import checks


def nin_block(in_channels, out_channels, kernel_size, strides, padding, *, num_1x1=2, batch_norm=False,
              last_relu=True, mlp_kernel=1):
    """The NiN block (NiN块, lesson 02): one k×k conv then 1×1 convs, each followed by ReLU.

    With the defaults it is the seed's block module for module; ``num_1x1`` changes the number of 1×1 convs,
    ``batch_norm`` puts a BatchNorm2d after each conv, ``last_relu=False`` leaves out the last ReLU and
    ``mlp_kernel=3`` makes the "1×1" convs 3×3 ones with padding 1 (the d2l-en exercise, lesson 06).
    """
    def conv(cin, k, s, p):
        layers = [nn.Conv2d(cin, out_channels, kernel_size=k, stride=s, padding=p)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        return layers + [nn.ReLU()]

    layers = conv(in_channels, kernel_size, strides, padding)
    for _ in range(num_1x1):
        layers += conv(out_channels, mlp_kernel, 1, mlp_kernel // 2)
    if not last_relu:
        layers.pop()
    return nn.Sequential(*layers)


def late_reduction_block(in_channels, num_classes, *, batch_norm=False, last_relu=True):
    """A last block that keeps ``in_channels`` through its 3×3 conv and first 1×1 conv and reduces to the classes
    only in its last 1×1 conv (lesson 06's remedy for '384×5×5 to 10×5×5 in one step')."""
    def conv(cin, cout, k, p, bn):
        return [nn.Conv2d(cin, cout, kernel_size=k, padding=p)] + ([nn.BatchNorm2d(cout)] if bn else []) + [nn.ReLU()]
    layers = [*conv(in_channels, in_channels, 3, 1, batch_norm), *conv(in_channels, in_channels, 1, 0, batch_norm),
              *conv(in_channels, num_classes, 1, 0, False)]
    return nn.Sequential(*(layers if last_relu else layers[:-1]))


# (out_channels, kernel_size, stride, padding) of the three blocks, and the pooling after each.
ARCHS = {
    # the seed's net for 224×224 input (AlexNet-sized first block)
    224: dict(blocks=((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1)), pool=dict(kernel_size=3, stride=2)),
    # a net for native 28×28 input: 28 -> 14 -> 7 -> 4, small enough to train on a CPU
    28: dict(blocks=((96, 5, 1, 2), (192, 3, 1, 1), (384, 3, 1, 1)), pool=dict(kernel_size=3, stride=2, padding=1)),
}
HEADS = ("gap", "fc", "late")


def _trunk(arch, width, in_channels, num_1x1, batch_norm, mlp_kernel):
    """The three NiN blocks with max-pooling after each; returns (layers, channels out)."""
    layers, cin = [], in_channels
    for out, k, s, p in ARCHS[arch]["blocks"]:
        out = max(1, round(out * width))
        layers += [nin_block(cin, out, kernel_size=k, strides=s, padding=p, num_1x1=num_1x1, batch_norm=batch_norm,
                             mlp_kernel=mlp_kernel),
                   nn.MaxPool2d(**ARCHS[arch]["pool"])]
        cin = out
    return layers, cin


def nin(*, arch=224, width=1.0, batch_norm=False, dropout=0.5, num_1x1=2, final_relu=True, head="gap",
        num_classes=10, in_channels=1, hidden=4096, input_size=None, mlp_kernel=1):
    """NiN (lesson 02): three NiN blocks with pooling, then a head. ``nin()`` is the seed's net module for module.

    head 'gap': dropout, a last NiN block with one map per class, global average pooling and Flatten;
    'late': the same with ``late_reduction_block`` as the last block; 'fc': the same trunk with an AlexNet-style
    head (Flatten, two Linear+ReLU+Dropout layers of ``hidden`` units, a Linear to the classes) for
    ``input_size`` (default: the arch's own size).
    ``final_relu=False`` leaves out the ReLU on the class maps, so the class scores may be negative (lesson 04:
    with the ReLU, a class whose map is 0 for every image gets no gradient, a "dead class"). ``mlp_kernel=3``
    turns every block's 1×1 convs into 3×3 ones (the d2l-en exercise).
    """
    checks.choice("arch", arch, tuple(ARCHS))
    checks.number("width", width, 0, 4, low_open=True)
    checks.number("dropout", dropout, 0, 1, high_open=True)
    checks.whole_number("num_1x1", num_1x1, 0, 4)
    checks.whole_number("num_classes", num_classes, 2)
    checks.flag("final_relu", final_relu)
    checks.choice("head", head, HEADS)
    checks.choice("mlp_kernel", mlp_kernel, (1, 3))
    layers, cin = _trunk(arch, width, in_channels, num_1x1, batch_norm, mlp_kernel)
    if head == "fc":
        checks.whole_number("hidden", hidden, 1)
        side = _side_after(layers, in_channels, input_size if input_size is not None else arch)
        return nn.Sequential(*layers, nn.Flatten(),
                             nn.Linear(cin * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
                             nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                             nn.Linear(hidden, num_classes))
    if head == "late":
        last = late_reduction_block(cin, num_classes, batch_norm=batch_norm, last_relu=final_relu)
    else:
        last = nin_block(cin, num_classes, kernel_size=3, strides=1, padding=1, num_1x1=num_1x1, batch_norm=False,
                         last_relu=final_relu, mlp_kernel=mlp_kernel)
    return nn.Sequential(*layers, nn.Dropout(dropout), last, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


def nin_fc_head(**kwargs):
    """``nin(head='fc', ...)``: the seed's trunk with an AlexNet-style fully connected head (lessons 02 and 06)."""
    return nin(head="fc", **kwargs)


def _side_after(trunk, in_channels, input_size):
    """Side length of the trunk's output for a square input (the FC head's input size)."""
    with torch.no_grad():
        probe = copy.deepcopy(nn.Sequential(*trunk)).to("meta")  # shapes only, the real layers stay put
        out = probe(torch.zeros(1, in_channels, input_size, input_size, device="meta"))
    return out.shape[-1]


def init_xavier(net):
    """Xavier-uniform init of every Linear and Conv2d weight, as the book's ``train_ch6`` does."""
    def init(m):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    net.apply(init)
    return net


def count_parameters(net, trainable_only=True):
    """Number of (trainable) parameters of a module."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


# Named models for the command line: name -> (nin() arguments, the input side it is built for)
MODELS = {
    "d2l": (dict(), 224),
    "nin-bn": (dict(batch_norm=True), 224),
    "nin28": (dict(arch=28), 28),
    "fc-head": (dict(head="fc"), 224),
    "fc-head28": (dict(arch=28, head="fc"), 28),
}


def get_model(name, **kwargs):
    """Build a named model ('d2l', 'nin-bn', 'nin28', 'fc-head', 'fc-head28')."""
    checks.choice("model", name, tuple(MODELS))
    return nin(**{**MODELS[name][0], **kwargs})


def model_input_size(name):
    """The input size a named model is built for (224 or 28)."""
    return MODELS[checks.choice("model", name, tuple(MODELS))][1]
