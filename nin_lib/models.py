"""NiN models: the seed's ``nin_block`` and net, its variants, and an FC-head baseline (lessons 02-06)."""
import copy

import torch
from torch import nn


def nin_block(in_channels, out_channels, kernel_size, strides, padding, *, num_1x1=2, batch_norm=False):
    """The NiN block (NiN块, lesson 02): one k×k conv then 1×1 convs, each followed by ReLU.

    With the defaults it is the seed's block module for module; ``num_1x1`` changes the
    number of 1×1 convs and ``batch_norm`` puts a BatchNorm2d after each conv.
    """
    def conv(cin, k, s, p):
        layers = [nn.Conv2d(cin, out_channels, kernel_size=k, stride=s, padding=p)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU())
        return layers

    layers = conv(in_channels, kernel_size, strides, padding)
    for _ in range(num_1x1):
        layers += conv(out_channels, 1, 1, 0)
    return nn.Sequential(*layers)


# (out_channels, kernel_size, stride, padding) of the four blocks, and the pooling between them.
ARCHS = {
    # the seed's net for 224×224 input (AlexNet-sized first block)
    224: dict(blocks=((96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1)), pool=dict(kernel_size=3, stride=2)),
    # a net for native 28×28 input: 28 -> 14 -> 7 -> 4, small enough to train on a CPU
    28: dict(blocks=((96, 5, 1, 2), (192, 3, 1, 1), (384, 3, 1, 1)), pool=dict(kernel_size=3, stride=2, padding=1)),
}


def _trunk(arch, width, in_channels, num_1x1, batch_norm):
    """The three NiN blocks with max-pooling after each; returns (layers, channels out)."""
    layers, cin = [], in_channels
    for out, k, s, p in ARCHS[arch]["blocks"]:
        out = max(1, round(out * width))
        layers += [nin_block(cin, out, kernel_size=k, strides=s, padding=p, num_1x1=num_1x1, batch_norm=batch_norm),
                   nn.MaxPool2d(**ARCHS[arch]["pool"])]
        cin = out
    return layers, cin


def _check(arch, width, dropout, num_1x1, num_classes):
    if arch not in ARCHS:
        raise ValueError(f"arch {arch!r} is not known; use 224 (the seed's net) or 28 (native 28×28 input).")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 4:
        raise ValueError(f"width {width!r} is not allowed; use a number in (0, 4].")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout {dropout!r} is not allowed; use a probability in [0, 1).")
    if isinstance(num_1x1, bool) or not isinstance(num_1x1, int) or not 0 <= num_1x1 <= 4:
        raise ValueError(f"num_1x1 {num_1x1!r} is not allowed; use a whole number from 0 to 4.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes {num_classes!r} is not allowed; use a whole number >= 2.")


def nin(*, arch=224, width=1.0, batch_norm=False, dropout=0.5, num_1x1=2, num_classes=10, in_channels=1):
    """NiN (lesson 02): three NiN blocks with pooling, dropout, a last NiN block with one map per
    class, global average pooling and Flatten. ``nin()`` is the seed's net module for module.
    """
    _check(arch, width, dropout, num_1x1, num_classes)
    layers, cin = _trunk(arch, width, in_channels, num_1x1, batch_norm)
    layers += [nn.Dropout(dropout),
               nin_block(cin, num_classes, kernel_size=3, strides=1, padding=1, num_1x1=num_1x1, batch_norm=False),
               nn.AdaptiveAvgPool2d((1, 1)),
               nn.Flatten()]
    return nn.Sequential(*layers)


def nin_fc_head(*, arch=224, width=1.0, batch_norm=False, dropout=0.5, num_1x1=2, num_classes=10,
                in_channels=1, hidden=4096, input_size=None):
    """The same trunk as ``nin`` with an AlexNet-style fully connected head instead of the last
    NiN block and global average pooling (lessons 02 and 06): Flatten, two hidden Linear+ReLU+Dropout
    layers of ``hidden`` units, and a Linear to the classes.
    """
    _check(arch, width, dropout, num_1x1, num_classes)
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden {hidden!r} is not allowed; use a whole number >= 1.")
    layers, cin = _trunk(arch, width, in_channels, num_1x1, batch_norm)
    side = _trunk_side(layers, in_channels, input_size if input_size is not None else arch)
    return nn.Sequential(*layers, nn.Flatten(),
                         nn.Linear(cin * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, num_classes))


def _trunk_side(trunk, in_channels, input_size):
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


# Named models for the command line and the presets.
MODELS = {
    "d2l": lambda **kw: nin(**kw),
    "nin-bn": lambda **kw: nin(batch_norm=True, **kw),
    "nin28": lambda **kw: nin(arch=28, **kw),
    "fc-head": lambda **kw: nin_fc_head(**kw),
    "fc-head28": lambda **kw: nin_fc_head(arch=28, **kw),
}


def get_model(name, **kwargs):
    """Build a named model ('d2l', 'nin-bn', 'nin28', 'fc-head', 'fc-head28')."""
    if name not in MODELS:
        raise ValueError(f"model {name!r} is not known; choose one of {', '.join(MODELS)}.")
    return MODELS[name](**kwargs)


def model_input_size(name):
    """The input size a named model is built for (224 or 28)."""
    if name not in MODELS:
        raise ValueError(f"model {name!r} is not known; choose one of {', '.join(MODELS)}.")
    return 28 if name.endswith("28") else 224
