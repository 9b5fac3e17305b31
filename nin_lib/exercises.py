"""Checks of the lessons' "write it yourself" exercises (lessons 01-05). Each ``check_<name>(fn)`` runs the learner's
function against the reference on a few seeded random inputs, prints one line, "✓ <name>: right on N random inputs"
or one sentence naming the first thing that differs, and returns True or False. An exception raised by the learner's
code is named in that sentence, never shown as a traceback; a function whose body is only ``...`` is "not written yet".
"""
import copy
import dis
import itertools
import math
import random

import torch
from torch import nn
from torch.nn import functional as F

from . import models, shapes


class _Wrong(Exception):
    """The first thing a learner's function gets wrong, as one sentence (never leaves this module)."""


class _NotWritten(Exception):
    """The learner's function is still the placeholder."""


def _is_stub(fn):
    """True for a function whose body does nothing but return None or ``...`` (the committed placeholder)."""
    code = getattr(fn, "__code__", None)
    return code is not None and all(
        i.opname in ("RESUME", "NOP", "POP_TOP", "RETURN_VALUE", "RETURN_CONST", "LOAD_CONST")
        and (i.opname not in ("LOAD_CONST", "RETURN_CONST") or i.argval in (None, Ellipsis))
        for i in dis.get_instructions(code))


def _call(fn, *args):
    """The learner's function on ``args``; what it raises becomes one sentence."""
    try:
        result = fn(*args)
    except Exception as error:  # the learner's code, whatever it raises, is named, not shown as a traceback
        message = str(error).strip().splitlines()
        raise _Wrong(f"your function raised {type(error).__name__}" + (f": {message[0]}" if message else "")) from None
    if result is Ellipsis:
        raise _NotWritten
    return result


def _check(name, todo, fn, one, cases):
    """Run ``one(fn, *case)`` for every case (it raises _Wrong at the first difference); print the verdict, return it."""
    if not callable(fn):
        ok, line = False, f"{name}: the check takes your function itself, not {type(fn).__name__} {fn!r}"
    elif _is_stub(fn):
        ok, line = False, f"not written yet: {todo}"
    else:
        try:
            with torch.random.fork_rng(devices=[]):  # the learner's random-number state stays as it was
                for case in cases:
                    one(fn, *case)
            ok, line = True, f"✓ {name}: right on {len(cases)} random inputs"
        except _NotWritten:
            ok, line = False, f"not written yet: {todo}"
        except _Wrong as wrong:
            ok, line = False, str(wrong)
    print(line)
    return ok


def _same(got, want):
    """Whether the learner's tensor has the reference's shape and values (float32 arithmetic may differ a little)."""
    return (isinstance(got, torch.Tensor) and got.shape == want.shape
            and torch.allclose(got.detach().double(), want.double(), rtol=1e-4, atol=1e-5))


def _expect_tensor(got, want, where, mistakes=()):
    """Raise _Wrong if ``got`` differs from ``want``: a known mistake by its sentence, else the first difference."""
    if _same(got, want):
        return
    for wrong, sentence in mistakes:
        if _same(got, wrong):
            raise _Wrong(f"{where}: {sentence}")
    if not isinstance(got, torch.Tensor):
        raise _Wrong(f"{where}: your function returned {type(got).__name__}, not a tensor of shape {tuple(want.shape)}")
    if got.shape != want.shape:
        raise _Wrong(f"{where}: your output has shape {tuple(got.shape)}; it should be {tuple(want.shape)}")
    index = tuple(int(i) for i in (~torch.isclose(got.detach().double(), want.double(), rtol=1e-4, atol=1e-5))
                  .nonzero()[0])
    raise _Wrong(f"{where}: at index {index} your value is {float(got[index]):.4g}; it should be "
                 f"{float(want[index]):.4g}")


def _whole(value):
    """``value`` as an int if it is a whole number (a float such as 54.0 too), else None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _hint(got, hints):
    """" (why)" for the first known mistake whose value the learner's answer equals, else ""."""
    return next((f" ({why})" for value, why in hints if math.isclose(got, value, abs_tol=1e-9)), "")


def _generator(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Lesson 01: a 1×1 convolution as a matrix product; the parameters and MACs of a k×k conv

def check_conv1x1(fn):
    """Lesson 01: ``fn(X, W, b)`` -> (N, C_out, H, W), a 1×1 convolution with weights W (C_out, C_in), biases b."""
    def one(fn, n, c_in, c_out, h, w, seed):
        g = _generator(seed)
        X, W, b = (torch.randn(n, c_in, h, w, generator=g), torch.randn(c_out, c_in, generator=g),
                   torch.randn(c_out, generator=g))
        want = F.conv2d(X, W[:, :, None, None], b)
        mistakes = [(want.permute(0, 2, 3, 1), "your output has the channels last; put them on axis 1, (N, C_out, H, W)"),
                    (want - b[:, None, None], "your output lacks the bias: add b[o] to every pixel of output channel o")]
        if c_in == c_out:
            mistakes.append((F.conv2d(X, W.T[:, :, None, None], b), "your output is the 1×1 conv with W transposed; "
                             "row o of W holds the weights of output channel o: Y[:, o] = Σ_c W[o, c]·X[:, c] + b[o]"))
        got = _call(fn, X.clone(), W.clone(), b.clone())
        _expect_tensor(got, want, f"for X of shape {(n, c_in, h, w)} and W of shape {(c_out, c_in)}", mistakes)
    cases = [(2, 3, 3, 4, 5, 0), (2, 4, 3, 5, 6, 1), (1, 2, 5, 3, 3, 2), (3, 6, 2, 1, 7, 3), (2, 1, 4, 2, 2, 4)]
    return _check("conv1x1", "conv1x1(X, W, b), a 1×1 convolution as a matrix product over the channels", fn, one,
                  cases)


def check_params_and_macs(fn):
    """Lesson 01: ``fn(c_in, c_out, k, h_out, w_out)`` -> (parameters, MACs per image) of Conv2d(c_in, c_out, k)."""
    def one(fn, c_in, c_out, k, h, w):
        params, macs = c_in * c_out * k * k + c_out, c_out * h * w * c_in * k * k
        where = f"for Conv2d({c_in}, {c_out}, kernel_size={k}) with {h}×{w} outputs"
        got = _call(fn, c_in, c_out, k, h, w)
        pair = tuple(map(_whole, got)) if isinstance(got, (tuple, list)) else ()
        if len(pair) != 2 or None in pair:
            raise _Wrong(f"{where}: your function returned {got!r}; return two whole numbers, (parameters, MACs)")
        if params != macs and pair == (macs, params):
            raise _Wrong(f"{where}: you returned (MACs, parameters); return (parameters, MACs)")
        if pair[0] != params:
            raise _Wrong(f"{where}: your parameter count is {pair[0]:,}; it should be {params:,}" + _hint(pair[0], [
                (params - c_out, "the c_out biases are missing"),
                (c_in * c_out * k + c_out, "a k×k kernel has k² weights per pair of channels, not k"),
                (c_in * c_out * k * k + c_in, "there is one bias per output channel (c_out), not per input channel")]))
        if pair[1] != macs:
            raise _Wrong(f"{where}: your MAC count is {pair[1]:,}; it should be {macs:,}" + _hint(pair[1], [
                (c_out * h * w * k * k, "each output value sums c_in·k² products: c_in is missing"),
                (c_out * h * w * c_in * k, "each output value sums c_in·k² products, not c_in·k"),
                (h * w * c_in * k * k, "there are c_out·h_out·w_out output values: c_out is missing")]))
    rng = random.Random(1)
    cases = [(10, 10, 1, 5, 5), (1, 96, 11, 54, 54), (256, 64, 3, 26, 26)]
    cases += [(rng.randint(2, 64), rng.randint(2, 64), rng.choice((3, 5, 7)), rng.randint(2, 30), rng.randint(2, 30))
              for _ in range(3)]
    return _check("params_and_macs", "params_and_macs(c_in, c_out, k, h_out, w_out) -> (parameters, MACs)", fn, one,
                  cases)


# ---------------------------------------------------------------------------------------------
# Lesson 02: nin_block from its description; the parameters of a NiN block

def _layers(block):
    """The leaf layers of a block, each as its repr (``Conv2d(1, 6, kernel_size=(5, 5), ...)``, ``ReLU()``)."""
    return ["ReLU()" if isinstance(m, nn.ReLU) else repr(m) for m in block.modules() if not list(m.children())]


def check_nin_block(fn):
    """Lesson 02: ``fn(in_channels, out_channels, kernel_size, strides, padding, num_1x1)`` -> models.nin_block's
    block: the same layers and, with the same weights, the same output."""
    def one(fn, c_in, c_out, k, s, p, num_1x1, size, seed):
        where = f"for nin_block({c_in}, {c_out}, {k}, {s}, {p}, num_1x1={num_1x1})"
        torch.manual_seed(seed)
        want = models.nin_block(c_in, c_out, k, s, p, num_1x1=num_1x1)
        torch.manual_seed(seed)
        got = _call(fn, c_in, c_out, k, s, p, num_1x1)
        if not isinstance(got, nn.Module):
            raise _Wrong(f"{where}: your function returned {type(got).__name__}; return an nn.Sequential")
        mine, theirs = _layers(got), _layers(want)
        for i, layer in enumerate(theirs):
            if layer == "ReLU()" and (i >= len(mine) or mine[i] != layer):
                raise _Wrong(f"{where}: your block has no ReLU after its conv number "
                             f"{sum(t.startswith('Conv2d') for t in theirs[:i])} (layer {i} should be ReLU()); "
                             "every conv is followed by a ReLU")
            if i < len(mine) and mine[i] != layer:
                raise _Wrong(f"{where}: layer {i} of your block is {mine[i]}; it should be {layer}")
        if len(mine) != len(theirs):
            raise _Wrong(f"{where}: your block has {len(mine)} layers; it should have {len(theirs)}, the k×k conv and "
                         f"{num_1x1} 1×1 conv(s), each followed by a ReLU")
        with torch.no_grad():
            for a, b in zip(got.parameters(), want.parameters()):
                a.copy_(b)  # the same weights, whatever order the layers were made in
            X = torch.rand(2, c_in, size, size, generator=_generator(seed))
            _expect_tensor(_call(got, X), want(X), f"{where}, same layers, same weights")
    cases = [(1, 6, 5, 2, 1, 2, 12, 0), (3, 4, 3, 1, 1, 1, 8, 1), (2, 5, 1, 1, 0, 0, 6, 2), (4, 3, 3, 2, 0, 3, 9, 3),
             (1, 8, 11, 4, 0, 2, 32, 4)]
    return _check("my_nin_block", "my_nin_block(in_channels, out_channels, kernel_size, strides, padding, num_1x1), "
                  "an nn.Sequential", fn, one, cases)


def check_nin_block_params(fn):
    """Lesson 02: ``fn(c_in, c_out, k, num_1x1)`` -> the parameters of that NiN block."""
    def one(fn, c_in, c_out, k, num_1x1):
        with torch.device("meta"):
            want = models.count_parameters(models.nin_block(c_in, c_out, k, 1, 0, num_1x1=num_1x1))
        where = f"for nin_block({c_in}, {c_out}, kernel_size={k}, num_1x1={num_1x1})"
        got = _whole(_call(fn, c_in, c_out, k, num_1x1))
        if got is None:
            raise _Wrong(f"{where}: your function returned no whole number")
        if got != want:
            raise _Wrong(f"{where}: your count is {got:,}; the block has {want:,} parameters" + _hint(got, [
                (want - (num_1x1 + 1) * c_out, "the biases are missing: each conv has c_out of them"),
                (want + num_1x1 * c_out * c_out * (k * k - 1), "a 1×1 conv has c_out² weights, without k²"),
                (want + num_1x1 * c_out * (c_in - c_out), "the 1×1 convs go from c_out to c_out channels, not from c_in"),
                (want + (2 - num_1x1) * (c_out * c_out + c_out), f"there are num_1x1 = {num_1x1} 1×1 convs, not 2")]))
    rng = random.Random(2)
    cases = [(96, 256, 5, 2), (1, 96, 11, 2), (384, 10, 3, 1), (16, 32, 3, 3), (8, 4, 5, 0)]
    cases += [(rng.randint(1, 64), rng.randint(1, 64), rng.choice((1, 3, 5)), rng.randint(0, 3))]
    return _check("nin_block_params", "nin_block_params(c_in, c_out, k, num_1x1), a whole number", fn, one, cases)


# ---------------------------------------------------------------------------------------------
# Lesson 03: the output-size formula (with dilation); the smallest input of a stack of layers

def check_dilated_out_size(fn):
    """Lesson 03: ``fn(n, k, s, p, d)`` -> floor((n + 2p − d(k − 1) − 1)/s) + 1, the output side PyTorch computes."""
    def one(fn, n, k, s, p, d):
        want, span = shapes.spatial_out(n, k, s, p, d), n + 2 * p - d * (k - 1) - 1
        where = f"for n={n}, k={k}, s={s}, p={p}, d={d}"
        got = _call(fn, n, k, s, p, d)
        if isinstance(got, float) and not got.is_integer():
            raise _Wrong(f"{where}: you returned {got}, not a whole number; the formula takes the floor")
        if _whole(got) is None:
            raise _Wrong(f"{where}: your function returned {got!r}; return a whole number")
        if _whole(got) != want:
            raise _Wrong(f"{where}: you returned {got}; PyTorch gives {want}" + _hint(got, [
                (-(-span // s) + 1, f"you rounded up {span}/{s} + 1 = {span / s + 1:g}; the formula takes the floor: "
                                    "a window that would stick out is dropped"),
                (shapes.spatial_out(n, k, s, p), "the dilation is missing: the kernel spans d·(k − 1) + 1 pixels"),
                ((n + 2 * p - d * k) // s + 1, "the kernel spans d·(k − 1) + 1 pixels, not d·k"),
                (span // s, "the + 1 is missing: the window at position 0 counts too"),
                ((n + p - d * (k - 1) - 1) // s + 1, "the padding adds p pixels on each side, 2p in all")]))
    rng, cases = random.Random(3), [(224, 11, 4, 0, 1), (54, 3, 2, 0, 1), (28, 3, 2, 2, 3), (10, 3, 1, 0, 3)]
    while len(cases) < 8:
        k, s, d = rng.randint(1, 7), rng.randint(2, 4), rng.randint(1, 3)
        p, n = rng.randint(0, k // 2), rng.randint(d * (k - 1) + 1, 60)
        if (n + 2 * p - d * (k - 1) - 1) % s:  # cases where the floor matters
            cases.append((n, k, s, p, d))
    return _check("dilated_out_size", "dilated_out_size(n, k, s, p, d), the output side with dilation d", fn, one,
                  cases)


def _sides(n, layers):
    """The side after each (k, s, p) layer for an input side n, up to the first that gives less than 1 pixel."""
    sides = []
    for k, s, p in layers:
        sides.append(shapes.spatial_out(sides[-1] if sides else n, k, s, p))
        if sides[-1] < 1:
            break
    return sides


SEED_LAYERS = [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 2, 0), (3, 1, 1)]  # (k, s, p), lesson 03


def check_smallest_input(fn):
    """Lesson 03: ``fn(layers)`` -> the smallest input side for which every (k, s, p) layer gives at least 1 pixel."""
    def one(fn, layers):
        want = next(n for n in itertools.count(1) if min(_sides(n, layers)) >= 1)
        where = f"for layers {layers}"
        got = _whole(_call(fn, list(layers)))
        if got is None or got < 1:
            raise _Wrong(f"{where}: your function returned no whole number >= 1 (an input side in pixels); the "
                         f"smallest input here is {want}")
        sides = _sides(got, layers)
        if min(sides) < 1:
            i = len(sides) - 1
            raise _Wrong(f"{where}: an input of {got} pixels is too small: layer {i} {layers[i]} gets "
                         f"{sides[i - 1] if i else got} pixels and gives {sides[i]}; the smallest input is {want}")
        if got != want:
            raise _Wrong(f"{where}: {got - 1} pixels fit too; the smallest input is {want}")
    rng, cases = random.Random(4), [SEED_LAYERS, SEED_LAYERS[:5] + SEED_LAYERS[6:], [(3, 1, 1), (5, 1, 2)]]
    while len(cases) < 7:
        kernels = [rng.randint(1, 7) for _ in range(rng.randint(1, 6))]
        cases.append([(k, rng.randint(1, 3), rng.randint(0, k // 2)) for k in kernels])
    return _check("smallest_input", "smallest_input(layers) for a list of (k, s, p)", fn, one, [(c,) for c in cases])


# ---------------------------------------------------------------------------------------------
# Lesson 04: global average pooling as a mean; when adaptive pooling is an AvgPool2d

AXES = ("images", "channels", "height", "width")


def _axes(dims):
    return " and ".join(f"axis {d} ({AXES[d]})" for d in dims)


def check_global_avg_pool(fn):
    """Lesson 04: ``fn(X)`` -> (N, C), the mean of each of the N·C maps of X (N, C, H, W)."""
    def one(fn, shape, seed):
        X = torch.rand(*shape, generator=_generator(seed))
        mistakes = [(X.sum(dim=(2, 3)), f"your values are H·W = {shape[2] * shape[3]} times the mean: a sum over "
                                        "the positions, not their average"),
                    (X.mean(dim=(2, 3), keepdim=True), f"your output has shape {shape[:2] + (1, 1)}; flatten it to "
                                                       "one score per map, (N, C)")]
        mistakes += [(X.mean(dim=dims), f"you averaged over {_axes(dims)}; GAP averages each map over {_axes((2, 3))}")
                     for r in range(1, 5) for dims in itertools.combinations(range(4), r) if dims != (2, 3)]
        _expect_tensor(_call(fn, X.clone()), X.mean(dim=(2, 3)), f"for X of shape {shape}", mistakes)
    cases = [((2, 3, 4, 5), 0), ((1, 10, 5, 5), 1), ((3, 2, 6, 1), 2), ((4, 7, 3, 3), 3), ((2, 5, 7, 2), 4)]
    return _check("global_avg_pool", "global_avg_pool(X), (N, C, H, W) -> (N, C)", fn, one, cases)


def _pool_windows(n, k, s):
    """The windows [start, end) of an AvgPool2d(k, stride=s) on n pixels (none where k > n)."""
    return [(i * s, i * s + k) for i in range((n - k) // s + 1)] if k <= n else []


def check_avgpool_like(fn):
    """Lesson 04: ``fn(n, out)`` -> (kernel_size, stride) of an AvgPool2d with adaptive pooling's windows, or None."""
    def one(fn, n, out):
        windows = shapes.adaptive_windows(n, out)
        k, s = windows[0][1], windows[1][0] if out > 1 else 1  # the only AvgPool2d that could match
        want = (k, s) if s > 0 and _pool_windows(n, k, s) == windows else None
        where = f"for n = {n}, out = {out} adaptive pooling uses the windows {windows}"
        got = _call(fn, n, out)
        if got is None and want is not None:
            raise _Wrong(f"{where}; AvgPool2d({k}, stride={s}) uses the same, and you returned None")
        if got is None:
            return
        pair = tuple(map(_whole, got)) if isinstance(got, (tuple, list)) else ()
        if len(pair) != 2 or None in pair or min(pair) < 1:
            raise _Wrong(f"{where}; you returned {got!r}: return (kernel_size, stride), two whole numbers >= 1, or None")
        if want is None:
            raise _Wrong(f"{where}, which are not all as wide or not evenly spaced, so no AvgPool2d has them; you "
                         f"returned {pair}")
        if _pool_windows(n, *pair) != windows:
            raise _Wrong(f"{where}; AvgPool2d({pair[0]}, stride={pair[1]}) uses {_pool_windows(n, *pair) or 'none'}")
    rng, cases = random.Random(5), [(12, 4), (7, 2), (10, 4), (8, 2), (5, 1), (5, 5), (3, 5), (13, 3), (6, 4)]
    cases += [(n, rng.randint(1, n)) for n in (rng.randint(2, 20) for _ in range(3))]
    return _check("avgpool_like", "avgpool_like(n, out) -> (kernel_size, stride) or None", fn, one, cases)


# ---------------------------------------------------------------------------------------------
# Lesson 05: one training step; the accuracy of a net on a data set

def _tiny_net(seed, dropout=0.0):
    """A small classifier of 1×3×4 images into 4 classes, the same for the same seed."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 4))


def _batch(g, n):
    return torch.randn(n, 1, 3, 4, generator=g), torch.randint(0, 4, (n,), generator=g)


def _sgd_steps(net, batches, zero_grad=True):
    """The parameters after each step of plain SGD over ``batches`` (with or without zero_grad)."""
    optimizer, loss, after = torch.optim.SGD(net.parameters(), lr=0.5), nn.CrossEntropyLoss(), []
    for X, y in batches:
        if zero_grad:
            optimizer.zero_grad()
        loss(net(X), y).backward()
        optimizer.step()
        after.append({name: p.detach().clone() for name, p in net.named_parameters()})
    return after


def check_train_step(fn):
    """Lesson 05: ``fn(net, X, y, loss, optimizer)`` does one step; two steps on two batches must update the weights
    exactly as forward, loss, backward and step with zero_grad do."""
    def one(fn, seed):
        g = _generator(seed)
        batches, start = [_batch(g, 8), _batch(g, 8)], _tiny_net(seed)
        want, stale = _sgd_steps(copy.deepcopy(start), batches), _sgd_steps(copy.deepcopy(start), batches, False)
        net = copy.deepcopy(start)
        optimizer, loss = torch.optim.SGD(net.parameters(), lr=0.5), nn.CrossEntropyLoss()
        for step, (X, y) in enumerate(batches, 1):
            _call(fn, net, X.clone(), y.clone(), loss, optimizer)
            got = {name: p.detach() for name, p in net.named_parameters()}
            if step == 1 and all(torch.equal(got[name], p) for name, p in start.named_parameters()):
                raise _Wrong("the weights did not change: after loss.backward() call optimizer.step() "
                             "(and optimizer.zero_grad() before backward, not between backward and step)")
            if step == 2 and all(_same(got[name], stale[1][name]) for name in got):
                raise _Wrong("your second step also used the first batch's gradients: call optimizer.zero_grad() "
                             "every step (backward adds to .grad)")
            for name, value in want[step - 1].items():
                _expect_tensor(got[name], value, f"after step {step}, in {name}, on the same batches and seed")
    return _check("train_step", "train_step(net, X, y, loss, optimizer): forward, loss, backward, step, zero_grad",
                  fn, one, [(0,), (1,), (2,)])


def check_accuracy(fn):
    """Lesson 05: ``fn(net, data_iter)`` -> the fraction of the images the net classifies right, in evaluation mode."""
    def one(fn, seed, sizes):
        g = _generator(seed)
        batches, net = [_batch(g, n) for n in sizes], _tiny_net(seed, dropout=0.5)
        with torch.no_grad():
            hits = [net.eval()(X).argmax(1) == y for X, y in batches]
        right, total = int(sum(h.sum() for h in hits)), sum(sizes)
        modes = []
        net[3].register_forward_pre_hook(lambda module, args: modes.append(module.training))
        net.train()  # as a net is after training: dropout on
        got = _call(fn, net, batches)
        where = f"for {total} images in batches of {', '.join(map(str, sizes))}"
        if any(modes):
            raise _Wrong(f"{where}: the net ran in training mode, dropout on; call net.eval() before evaluating")
        got = got.item() if isinstance(got, torch.Tensor) and got.numel() == 1 else got
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise _Wrong(f"{where}: your function returned {got!r}; return the fraction of right answers")
        if not math.isclose(got, right / total, abs_tol=1e-6):
            raise _Wrong(f"{where}: you returned {got:.4g}; the accuracy is {right / total:.4g}, {right} of {total} "
                         "right" + _hint(got, [
                             (right, f"the number of right answers: divide it by the number of images, {total}"),
                             (sum(float(h.float().mean()) for h in hits) / len(hits), "the mean of the batches' "
                              "accuracies: the last batch is smaller, so count the right answers over all images"),
                             (1 - right / total, "the error rate, 1 − accuracy")]))
    return _check("accuracy", "accuracy(net, data_iter), the fraction of images classified right", fn, one,
                  [(0, (32, 32, 9)), (1, (16, 5)), (2, (25, 25, 25, 3))])
