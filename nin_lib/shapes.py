"""Layer-by-layer tracing: output shapes, parameters, MACs, receptive field, smallest valid input (lesson 03)."""
import copy
import html
import math
from dataclasses import dataclass

import torch
from torch import nn

from . import checks, models


class InputTooSmallError(ValueError):
    """The input is too small for the net; the message names the failing layer and the smallest size."""


def spatial_out(size, kernel_size, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Output length of a conv or pooling layer along one axis: floor((n + 2p - d(k-1) - 1) / s) + 1."""
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:  # PyTorch: the last window must start inside
        out -= 1
    return out


def adaptive_windows(size, out):
    """Windows [start, end) that adaptive pooling uses: start = floor(i·n/out), end = ceil((i+1)·n/out)."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _leaves(net, prefix=""):
    """(path, module) of every leaf module in forward order, for nets built from nn.Sequential."""
    children = list(net.named_children())
    if not children:
        yield prefix or "0", net
        return
    for name, child in children:
        yield from _leaves(child, f"{prefix}.{name}" if prefix else name)


def describe(module):
    """A short name for a layer, e.g. 'Conv2d 11×11/4, 1→96' or 'MaxPool2d 3×3/2'."""
    kind = type(module).__name__
    if isinstance(module, nn.Conv2d):
        k, s = _pair(module.kernel_size), _pair(module.stride)
        return f"{kind} {k[0]}×{k[1]}/{s[0]}, {module.in_channels}→{module.out_channels}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = _pair(module.kernel_size), _pair(module.stride)
        return f"{kind} {k[0]}×{k[1]}/{s[0]}"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return f"{kind} to {_pair(module.output_size)[0]}×{_pair(module.output_size)[1]}"
    if isinstance(module, nn.Linear):
        return f"{kind} {module.in_features}→{module.out_features}"
    if isinstance(module, nn.Sequential):
        return f"{kind} ({len(module)} layers)"
    return kind


@dataclass
class _Geometry:
    """What flows between layers: channels, spatial size, receptive field, jump (product of strides)."""
    c: int
    h: int
    w: int
    rf: int = 1
    jump: int = 1
    features: int = None  # set by Flatten


def _step(module, g, path):
    """Propagate the geometry through one leaf layer; raise InputTooSmallError where it breaks."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        if g.features is not None:
            raise checks.refuse(f"layer {path} ({describe(module)}) comes after Flatten; tracing needs conv layers first")
        k, s, p = _pair(module.kernel_size), _pair(module.stride or module.kernel_size), _pair(module.padding)
        d = _pair(getattr(module, "dilation", 1))
        ceil = getattr(module, "ceil_mode", False)
        h = spatial_out(g.h, k[0], s[0], p[0], d[0], ceil)
        w = spatial_out(g.w, k[1], s[1], p[1], d[1], ceil)
        if h < 1 or w < 1:
            raise InputTooSmallError(f"layer {path} ({describe(module)}) gets a {g.h}×{g.w} map "
                                     f"and would produce {max(h, 0)}×{max(w, 0)}")
        c = module.out_channels if isinstance(module, nn.Conv2d) else g.c
        return _Geometry(c, h, w, g.rf + d[0] * (k[0] - 1) * g.jump, g.jump * s[0])
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        oh, ow = (o if o is not None else n for o, n in zip(_pair(module.output_size), (g.h, g.w)))
        widest = max(e - s for s, e in adaptive_windows(g.h, oh))
        return _Geometry(g.c, oh, ow, g.rf + (widest - 1) * g.jump, g.jump * max(1, g.h // oh))
    if isinstance(module, nn.Flatten):
        return _Geometry(g.c, g.h, g.w, g.rf, g.jump, features=g.c * g.h * g.w)
    if isinstance(module, nn.Linear):
        if g.features is not None and g.features != module.in_features:
            raise InputTooSmallError(f"layer {path} ({describe(module)}) expects {module.in_features:,} features "
                                     f"but gets {g.features:,} ({g.c}×{g.h}×{g.w})")
        return _Geometry(module.out_features, 1, 1, g.rf, g.jump, features=module.out_features)
    return g


def _propagate(net, size, in_channels=1):
    g = _Geometry(in_channels, *size)
    for path, module in _leaves(net):
        g = _step(module, g, path)
    return g


def input_shape(input_size, in_channels=1):
    """``(channels, height, width)`` from what a learner passes: a side (224), ``(h, w)``, or a batch shape
    ``(n, c, h, w)`` such as the book's ``X.shape`` (then its channels count); anything else is the one sentence."""
    size = tuple(input_size) if isinstance(input_size, (tuple, list, torch.Size)) else input_size
    if isinstance(size, tuple) and len(size) == 4:
        _, in_channels, h, w = size
    elif isinstance(size, tuple) and len(size) == 2:
        h, w = size
    elif isinstance(size, tuple):
        raise checks.refuse(f"input size {input_size!r} is not allowed; use a side in pixels (224), (height, width) "
                            "or a batch shape (n, channels, height, width)")
    else:
        h = w = size
    for v in (h, w):
        checks.whole_number("input size", v if checks.is_whole(v) else input_size, 1, unit="of pixels")
    checks.whole_number("in_channels", in_channels, 1)
    return in_channels, h, w


def min_input_size(net, in_channels=1, limit=4096):
    """The smallest square input side the net accepts (67 for the seed's NiN)."""
    for side in range(1, limit + 1):
        try:
            _propagate(net, (side, side), in_channels)
        except InputTooSmallError:
            continue
        return side
    raise checks.refuse(f"no input size up to {limit} pixels works for this net")


def check_input_size(net, input_size, in_channels=1):
    """Raise InputTooSmallError, naming the failing layer and the smallest valid size, if the input does not fit."""
    in_channels, h, w = input_shape(input_size, in_channels)
    try:
        _propagate(net, (h, w), in_channels)
    except InputTooSmallError as e:
        smallest = min_input_size(net, in_channels)
        largest = _largest_input_size(net, smallest, in_channels)
        what = "is too small for" if min(h, w) < smallest else "does not fit"
        accepts = (f"the smallest input it accepts is {smallest}×{smallest}" if largest is None else
                   f"it accepts only inputs from {smallest}×{smallest} to {largest}×{largest}")
        raise InputTooSmallError(f"a {h}×{w} input {what} this net: {e}; {accepts}.") from None


def _largest_input_size(net, smallest, in_channels=1, limit=4096):
    """The end of the band of sizes from ``smallest`` that the net accepts; None if it is open-ended
    (nets with a fixed-size Linear head accept only a band, e.g. 195–226 for the FC-head NiN)."""
    if not any(isinstance(m, nn.Linear) for m in net.modules()):
        return None
    for side in range(smallest + 1, limit + 1):
        try:
            _propagate(net, (side, side), in_channels)
        except InputTooSmallError:
            return side - 1
    return None


@dataclass
class LayerRow:
    """One row of a trace."""
    path: str
    name: str
    output_shape: tuple
    params: int
    macs: int
    receptive_field: int


class Trace(list):
    """Rows of a layer-by-layer trace; prints as a text table and shows as HTML in a notebook."""

    columns = ("layer", "output shape", "parameters", "MACs", "receptive field")

    def __init__(self, rows, input_shape):
        super().__init__(rows)
        self.input_shape = tuple(input_shape)

    @property
    def params(self):
        return sum(r.params for r in self)

    @property
    def macs(self):
        return sum(r.macs for r in self)

    def cells(self):
        out = []
        for r in self:
            out.append((f"{r.path} {r.name}", "×".join(map(str, r.output_shape)), f"{r.params:,}",
                        f"{r.macs:,}", f"{r.receptive_field}" if r.receptive_field else "–"))
        out.append(("total", "", f"{self.params:,}", f"{self.macs:,}", ""))
        return out

    def __str__(self):
        rows = [self.columns] + self.cells()
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.columns))]
        lines = []
        for j, row in enumerate(rows):
            lines.append("  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(row)))
            if j == 0 or j == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = ""
        for i, row in enumerate(self.cells()):
            style = ' style="font-weight:bold"' if i == len(self) else ""
            body += f"<tr{style}>" + "".join(
                f'<td style="text-align:{"left" if j < 2 else "right"}">{html.escape(c)}</td>'
                for j, c in enumerate(row)) + "</tr>"
        caption = f"input {'×'.join(map(str, self.input_shape))}"
        return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self):
        return str(self)


def _macs(module, output):
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return output[0].numel() * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features
    return 0


def _run_leaves(net, input_shape):
    """Forward a zero input on the meta device (no real compute); per leaf: (path, module, output shape)."""
    probe = copy.deepcopy(net).to("meta")
    records = {}
    hooks = []
    originals = dict(_leaves(net))
    for path, module in _leaves(probe):
        hooks.append(module.register_forward_hook(
            lambda m, args, out, path=path: records.__setitem__(path, tuple(out.shape))))
    try:
        with torch.no_grad():
            probe.eval()
            probe(torch.zeros(input_shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return [(path, originals[path], records[path]) for path in originals if path in records]


def trace(net, input_size=224, in_channels=1, depth="top"):
    """Trace ``net`` on a 1×in_channels×H×W input: output shape, parameters, MACs and receptive field.

    ``depth='top'`` gives one row per top-level layer (as the seed's loop does), ``'leaf'`` one per leaf.
    An input that is too small raises InputTooSmallError before anything runs.
    """
    checks.choice("depth", depth, ("top", "leaf"))
    in_channels, h, w = input_shape(input_size, in_channels)
    check_input_size(net, (h, w), in_channels)
    shape = (1, in_channels, h, w)
    rows, g = [], _Geometry(in_channels, h, w)
    for path, module, out_shape in _run_leaves(net, shape):
        g = _step(module, g, path)
        out_zero = torch.empty(out_shape, device="meta")
        row = LayerRow(path, describe(module), out_shape, sum(p.numel() for p in module.parameters()),
                       _macs(module, out_zero), g.rf if g.features is None else 0)
        top = path.split(".")[0]
        if depth == "top" and "." in path:
            if rows and rows[-1].path == top:
                prev = rows[-1]
                rows[-1] = LayerRow(top, prev.name, out_shape, prev.params + row.params, prev.macs + row.macs,
                                    row.receptive_field)
                continue
            row = LayerRow(top, describe(dict(net.named_children())[top]), out_shape, row.params, row.macs,
                           row.receptive_field)
        rows.append(row)
    return Trace(rows, shape)


def seed_lines(net, input_size=224, in_channels=1):
    """The seed's shape loop as lines: ``Sequential output shape:\\t torch.Size([1, 96, 54, 54])`` …"""
    in_channels, h, w = input_shape(input_size, in_channels)
    check_input_size(net, (h, w), in_channels)
    X = torch.zeros((1, in_channels, h, w), device="meta")
    lines = []
    with torch.no_grad():
        for layer in copy.deepcopy(net).to("meta").eval():
            X = layer(X)
            lines.append(f"{layer.__class__.__name__} output shape:\t {X.shape}")
    return lines


def print_seed_table(net, input_size=224, in_channels=1):
    """Print what the seed's loop ``for layer in net: ... print(...)`` prints."""
    for line in seed_lines(net, input_size, in_channels):
        print(line)


BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}
INDEX_BYTES = 8  # max pooling keeps the position of each maximum as int64 for the backward pass


def _saved_for_backward(leaves, input_shape):
    """Values autograd keeps for the backward pass: (activation values per image, int64 index values per
    image, values per batch).

    ``leaves`` are (path, module, output shape) in forward order. A layer keeps its input (conv, linear,
    pooling, BatchNorm, ...) or its output (ReLU, sigmoid, tanh); max pooling also keeps int64 indices,
    dropout its mask, BatchNorm two per-channel statistics. Flatten and identities are views: no new tensor.
    A tensor kept by two layers (a ReLU's output is the next conv's input) counts once.
    """
    sizes = [math.prod(input_shape[1:])]  # tensor 0 is the input; tensor i + 1 the output of leaf i
    kept, extra, indices, per_batch = set(), 0, 0, 0
    current = 0
    for _, module, out_shape in leaves:
        alias = isinstance(module, (nn.Flatten, nn.Identity)) or (isinstance(module, nn.Dropout) and module.p == 0)
        if alias:
            continue
        out_values = math.prod(out_shape[1:])
        sizes.append(out_values)
        out = len(sizes) - 1
        if isinstance(module, (nn.ReLU, nn.Sigmoid, nn.Tanh)):
            kept.add(out)
        elif isinstance(module, nn.Dropout):
            extra += out_values  # the mask (a float tensor on the CPU, one byte per value on CUDA)
        else:
            kept.add(current)
            if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
                indices += out_values
            if isinstance(module, nn.BatchNorm2d):
                per_batch += 2 * module.num_features  # batch mean and inverse standard deviation
        current = out
    return sum(sizes[i] for i in kept) + extra, indices, per_batch


def _peak_predict_values(leaves, input_shape):
    """Largest input + output pair alive at once in a forward pass without gradients (one image)."""
    previous, peak = math.prod(input_shape[1:]), 0
    for _, module, out_shape in leaves:
        if isinstance(module, (nn.Flatten, nn.Identity, nn.Dropout)):  # views, or identity in eval mode
            continue
        out_values = math.prod(out_shape[1:])
        peak = max(peak, previous + out_values)
        previous = out_values
    return peak


def cost(net, input_size=224, batch_size=1, in_channels=1, dtype=torch.float32, optimizer_slots=0):
    """Parameters, FLOPs and memory of prediction and of one training step (lesson 03's exercise).

    FLOPs count a multiply-accumulate (MAC) as 2. Prediction is one forward pass: 2·MACs per image.
    A training step adds the backward pass, which computes for every conv/linear layer the gradient
    w.r.t. its weights and w.r.t. its input, each as many MACs as the forward pass; the first layer
    skips the input gradient (the images need none). So training ≈ 3× prediction, a little less.
    Memory counts tensors, not library workspaces: prediction = weights + the largest input/output
    pair alive at once; training = weights + gradients + ``optimizer_slots`` copies (1 for SGD with
    momentum, 2 for Adam) + what autograd keeps for the backward pass. Returns a dict of numbers.
    """
    checks.whole_number("batch_size", batch_size, 1)
    checks.whole_number("optimizer_slots", optimizer_slots, 0, 2)
    checks.choice("dtype", dtype, tuple(BYTES))
    t = trace(net, input_size, in_channels, depth="leaf")
    leaves = _run_leaves(net, t.input_shape)
    nbytes = BYTES[dtype]
    params = t.params
    first = next((r.macs for r in t if r.macs), 0)  # the first conv/linear: no gradient w.r.t. the images
    forward_flops = 2 * t.macs * batch_size
    activations, indices, per_batch = _saved_for_backward(leaves, t.input_shape)
    activations, indices = activations * batch_size + per_batch, indices * batch_size
    return {
        "parameters": params,
        "macs_per_image": t.macs,
        "predict_flops": forward_flops,
        "train_flops": 3 * forward_flops - 2 * first * batch_size,
        "weights_bytes": params * nbytes,
        "predict_bytes": params * nbytes + _peak_predict_values(leaves, t.input_shape) * batch_size * nbytes,
        "train_bytes": params * nbytes * (2 + optimizer_slots) + activations * nbytes + indices * INDEX_BYTES,
        "activation_values": activations,
        "index_values": indices,
        "activation_bytes": activations * nbytes + indices * INDEX_BYTES,
    }


# ---------------------------------------------------------------------------------------------
# Cost of one conv layer and per-layer parameters (lessons 01 and 02)

def conv_cost(in_channels, out_channels, kernel_size, input_size=28, stride=1, padding=0, bias=True):
    """Parameters, multiply-accumulates and output shape of one square Conv2d on a square input (lesson 01).

    Parameters are ``in·out·k² (+ out biases)``; MACs are ``out·H_out·W_out·in·k²`` for one image.
    Returns a dict: parameters, weights, biases, macs, output_shape (channels, height, width).
    """
    for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                             ("kernel_size", kernel_size, 1), ("input_size", input_size, 1),
                             ("stride", stride, 1), ("padding", padding, 0)):
        checks.whole_number(name, value, low)
    side = spatial_out(input_size, kernel_size, stride, padding)
    if side < 1:
        raise InputTooSmallError(f"a kernel of {kernel_size}×{kernel_size} with padding {padding} does not fit a "
                                 f"{input_size}×{input_size} input; use an input of at least "
                                 f"{max(1, kernel_size - 2 * padding)} pixels or a smaller kernel.")
    weights = in_channels * out_channels * kernel_size ** 2
    biases = out_channels if bias else 0
    return {"parameters": weights + biases, "weights": weights, "biases": biases,
            "macs": out_channels * side * side * in_channels * kernel_size ** 2,
            "output_shape": (out_channels, side, side)}


def layer_parameters(net, input_size=224, in_channels=1):
    """(path, layer name, parameters) of every leaf layer that has parameters, in forward order (lesson 02)."""
    return [(r.path, r.name, r.params) for r in trace(net, input_size, in_channels, depth="leaf") if r.params]


HEADS = ("gap", "fc")


def nin_parameter_breakdown(head="gap", num_1x1=2, width=1.0, hidden=4096, arch=224):
    """Per-layer parameters of NiN with its GAP head or with an AlexNet-style FC head (lesson 02's widget).

    The net is built on the meta device (no memory, no compute). Returns a dict: ``rows`` as
    (path, name, parameters, part) with part 'trunk' or 'head', ``total``, ``trunk`` and ``head``.
    """
    checks.choice("head", head, HEADS)
    with torch.device("meta"):
        net = models.nin(arch=arch, width=width, num_1x1=num_1x1, head=head, hidden=hidden)
    trunk_layers = 2 * len(models.ARCHS[arch]["blocks"])  # a block and a pooling layer each
    rows = [(path, name, params, "trunk" if int(path.split(".")[0]) < trunk_layers else "head")
            for path, name, params in layer_parameters(net, arch)]
    total = sum(r[2] for r in rows)
    head_params = sum(r[2] for r in rows if r[3] == "head")
    return {"rows": rows, "total": total, "trunk": total - head_params, "head": head_params}


# ---------------------------------------------------------------------------------------------
# Lesson 03: the input-size panel's logic

def trace_or_message(net, input_size, in_channels=1, depth="top"):
    """Lesson 03's input-size panel: the Trace for ``input_size``, or the one sentence saying why it does not fit.

    A size that is too small names the failing layer and the smallest size that works; a size that is
    not a whole number >= 1 says what is allowed. Nothing raises, so a panel can show either result.
    """
    try:
        return trace(net, input_size, in_channels, depth)
    except ValueError as error:  # InputTooSmallError is a ValueError
        return str(error)
