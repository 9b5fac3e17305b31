"""Layer-by-layer tracing: output shapes, parameters, MACs, receptive field, smallest valid input (lesson 03)."""
import copy
import html
import math
from collections import namedtuple

import torch
from torch import nn
from torch.nn import functional as F

from . import checks, models


class InputSizeError(checks.Refusal):
    """An input whose channels or size the net cannot take: too small or too large, where, what fits (lesson 03)."""


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


def _leaves(net):
    """(path, module) of every leaf module in forward order, for nets built from nn.Sequential."""
    return [(path or "0", m) for path, m in net.named_modules(remove_duplicate=False) if not list(m.children())]


def layer_name(module):
    """A short name for a layer, e.g. 'Conv2d 11×11/4, 1→96' or 'MaxPool2d 3×3/2'."""
    kind, k, s = type(module).__name__, _pair(getattr(module, "kernel_size", 0)), _pair(getattr(module, "stride", 0))
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        channels = f", {module.in_channels}→{module.out_channels}" if isinstance(module, nn.Conv2d) else ""
        return f"{kind} {k[0]}×{k[1]}/{s[0]}{channels}"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return f"{kind} to {_pair(module.output_size)[0]}×{_pair(module.output_size)[1]}"
    if isinstance(module, nn.Linear):
        return f"{kind} {module.in_features}→{module.out_features}"
    if isinstance(module, nn.Sequential):
        return f"{kind} ({len(module)} layers)"
    return kind


# What flows between layers: channels, spatial size, receptive field, jump (product of strides), features once flat
_Geometry = namedtuple("_Geometry", "c h w rf jump features", defaults=(1, 1, None))


def _step(module, g, path):
    """Propagate the geometry through one leaf layer; raise InputSizeError where the size breaks it."""
    where = f"layer {path} ({layer_name(module)})"
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        if g.features is not None:
            raise checks.refuse(f"{where} comes after Flatten; tracing needs conv layers first")
        if isinstance(module, nn.Conv2d) and module.in_channels not in (0, g.c):  # 0: a lazy conv takes any
            raise checks.refuse(f"{where} takes {module.in_channels} channels but gets {g.c}")
        k, s, p = _pair(module.kernel_size), _pair(module.stride or module.kernel_size), _pair(module.padding)
        d, ceil = _pair(getattr(module, "dilation", 1)), getattr(module, "ceil_mode", False)
        if p[0] == "same":  # a conv padded to keep its input's size (stride 1)
            h, w = g.h, g.w
        else:
            p = (0, 0) if p[0] == "valid" else p
            h, w = (spatial_out(n, k[i], s[i], p[i], d[i], ceil) for i, n in enumerate((g.h, g.w)))
        if h < 1 or w < 1:
            raise InputSizeError(f"{where} gets a {g.h}×{g.w} map and would produce {max(h, 0)}×{max(w, 0)}")
        c = module.out_channels if isinstance(module, nn.Conv2d) else g.c
        return _Geometry(c, h, w, g.rf + d[0] * (k[0] - 1) * g.jump, g.jump * s[0])
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        oh, ow = (o if o is not None else n for o, n in zip(_pair(module.output_size), (g.h, g.w)))
        widest = max(e - s for s, e in adaptive_windows(g.h, oh))
        return _Geometry(g.c, oh, ow, g.rf + (widest - 1) * g.jump, g.jump * max(1, g.h // oh))
    if isinstance(module, nn.Flatten):
        return g._replace(features=g.c * g.h * g.w)
    if isinstance(module, nn.Linear):
        if g.features is not None and g.features != module.in_features:
            raise InputSizeError(f"{where} expects {module.in_features:,} features "
                                 f"but gets {g.features:,} ({g.c}×{g.h}×{g.w})")
        return _Geometry(module.out_features, 1, 1, g.rf, g.jump, features=module.out_features)
    return g


def _size_error(net, h, w, in_channels):
    """The InputSizeError an h×w input meets in ``net``, or None where it fits."""
    g = _Geometry(in_channels, h, w)
    try:
        for path, module in _leaves(net):
            g = _step(module, g, path)
    except InputSizeError as error:
        return error
    return None


def input_shape(input_size, in_channels=1):
    """``(channels, height, width)`` from a side (224), ``(h, w)`` or a batch shape ``(n, c, h, w)`` (``X.shape``)."""
    size = tuple(input_size) if isinstance(input_size, (tuple, list, torch.Size)) else (input_size, input_size)
    if len(size) == 4:
        in_channels = size[1]
    elif len(size) != 2:
        raise checks.refuse(f"input size {input_size!r} is not allowed; use a side in pixels (224), (height, width) "
                            "or a batch shape (n, channels, height, width)")
    h, w = size[-2:]
    for v in (h, w):
        checks.whole_number("input size", v if checks.is_whole(v) else input_size, 1, unit="of pixels")
    checks.whole_number("in_channels", in_channels, 1)
    return in_channels, h, w


def min_input_size(net, in_channels=1, limit=4096):
    """The smallest square input side the net accepts (67 for the seed's NiN)."""
    smallest = next((side for side in range(1, limit + 1) if not _size_error(net, side, side, in_channels)), None)
    if smallest is None:
        raise checks.refuse(f"no input size up to {limit} pixels works for this net")
    return smallest


def check_input_size(net, input_size, in_channels=1):
    """Raise InputSizeError, naming the failing layer and the sizes that fit, if an input's channels or size do not."""
    in_channels, h, w = input_shape(input_size, in_channels)
    path, first = next(((p, m) for p, m in _leaves(net) if isinstance(m, nn.Conv2d)), (None, None))
    if first is not None and first.in_channels not in (0, in_channels):  # 0: a lazy conv, any channels
        raise InputSizeError(f"a {in_channels}-channel input does not fit this net: its first layer {path} "
                             f"({layer_name(first)}) takes {first.in_channels}-channel images; use those, "
                             f"or build the net with in_channels={in_channels}.")
    error = _size_error(net, h, w, in_channels)
    if error is not None:
        smallest, largest = min_input_size(net, in_channels), None
        if any(isinstance(m, nn.Linear) for m in net.modules()):  # a fixed-size Linear accepts only a band of sizes
            largest = next((n - 1 for n in range(smallest + 1, 4097) if _size_error(net, n, n, in_channels)), None)
        small, large = min(h, w) < smallest, largest is not None and max(h, w) > largest
        what = ("is too small for" if small and not large else "is too large for" if large and not small
                else "does not fit")
        accepts = (f"the smallest input it accepts is {smallest}×{smallest}" if largest is None else
                   f"it accepts only inputs from {smallest}×{smallest} to {largest}×{largest}")
        raise InputSizeError(f"a {h}×{w} input {what} this net: {error}; {accepts}.")


def check_input(net, shape):
    """Raise InputSizeError if a batch of ``shape`` (n, c, h, w) does not fit ``net``, by its channels or its size
    (``train.fit`` asks when a batch fails); a net that shapes cannot follow is left to its forward pass."""
    try:
        check_input_size(net, tuple(shape))
    except checks.Refusal as refusal:
        if isinstance(refusal, InputSizeError):
            raise


LayerRow = namedtuple("LayerRow", "path name output_shape params macs receptive_field")  # one row of a trace


class Trace(list):
    """Rows of a layer-by-layer trace; prints as a text table and shows as HTML in a notebook."""

    columns = ("layer", "output shape", "parameters", "MACs", "receptive field")

    def __init__(self, rows, input_shape):
        super().__init__(rows)
        self.input_shape = tuple(input_shape)
        self.params, self.macs = sum(r.params for r in self), sum(r.macs for r in self)

    def cells(self):
        """The table's text: a row per layer, then the totals."""
        rows = [(f"{r.path} {r.name}", "×".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.macs:,}",
                 f"{r.receptive_field}" if r.receptive_field else "–") for r in self]
        return rows + [("total", "", f"{self.params:,}", f"{self.macs:,}", "")]

    def __str__(self):
        rows = [self.columns] + self.cells()
        widths = [max(map(len, column)) for column in zip(*rows)]
        lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in rows]
        rule = "  ".join("-" * w for w in widths)
        return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])

    __repr__ = __str__

    def _repr_html_(self):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        rows = ["".join(f'<td style="text-align:{"left" if j < 2 else "right"}">{html.escape(c)}</td>'
                        for j, c in enumerate(row)) for row in self.cells()]
        body = "".join(f"<tr>{row}</tr>" for row in rows[:-1]) + f'<tr style="font-weight:bold">{rows[-1]}</tr>'
        caption = html.escape(f"input {'×'.join(map(str, self.input_shape))}")
        return f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _macs(module, out_shape):
    """Multiply-accumulates of one conv or Linear layer per image (lesson 01's formulas); other layers count 0."""
    if isinstance(module, nn.Conv2d):
        return math.prod(out_shape[1:]) * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return math.prod(out_shape[1:]) * module.in_features
    return 0


def _run_leaves(net, input_shape):
    """(path, module, output shape) per leaf, from a forward pass of a copy on the meta device (no arithmetic)."""
    probe, out_shapes = copy.deepcopy(net).to("meta").eval(), {}
    for path, module in _leaves(probe):
        module.register_forward_hook(lambda m, args, out, path=path: out_shapes.__setitem__(path, tuple(out.shape)))
    with torch.no_grad():
        probe(torch.zeros(input_shape, device="meta"))
    return [(path, module, out_shapes[path]) for path, module in _leaves(net) if path in out_shapes]


def trace(net, input_size=224, in_channels=1, depth="top"):
    """Output shape, parameters, MACs and receptive field per top-level layer (``depth='top'``, as the seed's loop)
    or per leaf (``'leaf'``) of ``net`` on one input; one that does not fit raises InputSizeError first (lesson 03)."""
    checks.choice("depth", depth, ("top", "leaf"))
    in_channels, h, w = input_shape(input_size, in_channels)
    check_input_size(net, (h, w), in_channels)
    shape = (1, in_channels, h, w)
    rows, g = [], _Geometry(in_channels, h, w)
    for path, module, out_shape in _run_leaves(net, shape):
        g = _step(module, g, path)
        row = LayerRow(path, layer_name(module), out_shape, sum(p.numel() for p in module.parameters()),
                       _macs(module, out_shape), g.rf if g.features is None else 0)
        if depth == "top" and "." in path:  # a layer inside a block: the block's row adds it in
            top = path.split(".")[0]
            block = (rows.pop() if rows and rows[-1].path == top else
                     LayerRow(top, layer_name(dict(net.named_children())[top]), (), 0, 0, 0))
            row = row._replace(path=top, name=block.name, params=block.params + row.params, macs=block.macs + row.macs)
        rows.append(row)
    return Trace(rows, shape)


def windows(net, upto=None):
    """(k, s, p) of every conv and pooling window in ``net``'s top-level layers up to index ``upto``, in order: the
    geometry that sets each layer's output side and receptive field (lesson 03; 1×1 convs are (1, 1, 0))."""
    layers = list(net.children())[:None if upto is None else upto + 1]
    return [(_pair(m.kernel_size)[0], _pair(m.stride or m.kernel_size)[0], _pair(m.padding)[0])
            for layer in layers for m in (layer.modules() if list(layer.children()) else [layer])
            if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]


def side_after(chain, size):
    """The output side after the windows ``chain`` for a ``size``-pixel input side (< 1: some layer gets none)."""
    for k, s, p in chain:
        size = spatial_out(size, k, s, p) if size >= 1 else size
    return size


def cell_field(chain, cell):
    """(first, last) input pixel along one axis that output cell ``cell`` sees through ``chain``; below 0 or past
    the image is zero padding (lesson 03's recurrence: r = r + (k-1)·j, j = j·s, first = first - p·j)."""
    r, j, first = 1, 1, 0
    for k, s, p in chain:
        r, first, j = r + (k - 1) * j, first - p * j, j * s
    return first + cell * j, first + cell * j + r - 1


def influence(chain, size, row, col):
    """How much each pixel of a ``size``×``size`` input counts in output cell (row, col) when every window of
    ``chain`` averages what it sees (zero padding included): the gradient of lesson 03's probe with all weights
    equal, on one channel; (size, size), summing to 1 (lesson 03)."""
    X = torch.ones(1, 1, size, size, requires_grad=True)
    Y = X
    for k, s, p in chain:
        Y = F.avg_pool2d(Y, k, s, p, count_include_pad=True)
    Y[0, 0, row, col].backward()
    return X.grad[0, 0] / X.grad.sum()


def seed_lines(net, input_size=224, in_channels=1):
    """The seed's shape loop as lines: ``Sequential output shape:\\t torch.Size([1, 96, 54, 54])`` …"""
    layers = dict(net.named_children())
    return [f"{layers[row.path].__class__.__name__} output shape:\t {torch.Size(row.output_shape)}"
            for row in trace(net, input_size, in_channels)]


BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}
INDEX_BYTES = 8  # max pooling keeps the position of each maximum as int64 for the backward pass


def cost(net, input_size=224, batch_size=1, in_channels=1, dtype=torch.float32, optimizer_slots=0):
    """Parameters, FLOPs and memory of prediction and of one training step, as a dict (lesson 03's exercise).

    FLOPs count a MAC as 2; training adds each conv/linear layer's gradients for its weights and its input (but the
    first layer's), as many MACs each: about 3× prediction. Memory counts tensors: prediction = weights + the largest
    input/output pair alive at once; training = weights, gradients, ``optimizer_slots`` copies (1: SGD with momentum,
    2: Adam) and what autograd keeps (a layer's input, or output for ReLU, sigmoid, tanh, once; max pooling's indices).
    """
    checks.whole_number("batch_size", batch_size, 1)
    checks.whole_number("optimizer_slots", optimizer_slots, 0, 2)
    checks.choice("dtype", dtype, tuple(BYTES))
    t = trace(net, input_size, in_channels, depth="leaf")
    sizes = [math.prod(t.input_shape[1:])]  # values per image: tensor 0 is the input; tensor i + 1 the output of leaf i
    kept, masks, indices, per_batch, peak, current = set(), 0, 0, 0, 0, 0
    for _, module, out_shape in _run_leaves(net, t.input_shape):
        if isinstance(module, (nn.Flatten, nn.Identity)) or (isinstance(module, nn.Dropout) and module.p == 0):
            continue  # a view of its input
        out_values = math.prod(out_shape[1:])
        sizes.append(out_values)
        if isinstance(module, nn.Dropout):  # predicting, dropout is the identity
            masks += out_values  # its mask: a float tensor on the CPU, one byte per value on CUDA
        else:
            peak = max(peak, sizes[current] + out_values)
            kept.add(len(sizes) - 1 if isinstance(module, (nn.ReLU, nn.Sigmoid, nn.Tanh)) else current)
            if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)):
                indices += out_values
            if isinstance(module, nn.BatchNorm2d):
                per_batch += 2 * module.num_features  # batch mean and inverse standard deviation
        current = len(sizes) - 1
    activations = (sum(sizes[i] for i in kept) + masks) * batch_size + per_batch
    indices *= batch_size
    nbytes, params, forward_flops = BYTES[dtype], t.params, 2 * t.macs * batch_size
    first = next((r.macs for r in t if r.macs), 0)  # the first conv/linear: no gradient w.r.t. the images
    return {
        "parameters": params,
        "macs_per_image": t.macs,
        "predict_flops": forward_flops,
        "train_flops": 3 * forward_flops - 2 * first * batch_size,
        "weights_bytes": params * nbytes,
        "predict_bytes": params * nbytes + peak * batch_size * nbytes,
        "train_bytes": params * nbytes * (2 + optimizer_slots) + activations * nbytes + indices * INDEX_BYTES,
        "activation_values": activations,
        "index_values": indices,
        "activation_bytes": activations * nbytes + indices * INDEX_BYTES,
    }


def conv_cost(in_channels, out_channels, kernel_size, input_size=28, stride=1, padding=0, bias=True):
    """Parameters (``in·out·k² + out biases``), weights, biases, MACs (``out·H_out·W_out·in·k²`` per image) and
    output_shape (channels, height, width) of one square Conv2d on a square input, as a dict (lesson 01)."""
    for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                             ("kernel_size", kernel_size, 1), ("input_size", input_size, 1),
                             ("stride", stride, 1), ("padding", padding, 0)):
        checks.whole_number(name, value, low)
    side = spatial_out(input_size, kernel_size, stride, padding)
    if side < 1:
        raise InputSizeError(f"a kernel of {kernel_size}×{kernel_size} with padding {padding} does not fit a "
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


def nin_parameter_breakdown(head="gap", num_1x1=2, width=1.0, hidden=4096, arch=224):
    """Per-layer parameters of NiN with its GAP head or an AlexNet-style FC head (lesson 02's widget), built on the
    meta device: a dict of ``rows`` (path, name, parameters, part 'trunk' or 'head'), ``total``, ``trunk``, ``head``."""
    with torch.device("meta"):
        net = models.nin(arch=arch, width=width, num_1x1=num_1x1, head=head, hidden=hidden)
    trunk_layers = 2 * len(models.ARCHS[arch]["blocks"])  # a block and a pooling layer each
    rows = [(path, name, params, "trunk" if int(path.split(".")[0]) < trunk_layers else "head")
            for path, name, params in layer_parameters(net, arch)]
    total = sum(r[2] for r in rows)
    head_params = sum(r[2] for r in rows if r[3] == "head")
    return {"rows": rows, "total": total, "trunk": total - head_params, "head": head_params}
