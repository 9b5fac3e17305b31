"""The checks of the lessons' exercises (nin_lib.exercises): each accepts the lesson's worked answer, says "not written
yet" for the committed placeholder, and names typical mistakes in one sentence, never with a traceback."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nin_lib import exercises, shapes

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb"))
CHECK_CALL = re.compile(r"^exercises\.(check_\w+)\((\w+)\);?$", re.M)
WORKED = re.compile(r"<summary>Worked answer</summary>\s*```python\n(.*?)```", re.S)


def exercises_of(path):
    """(placeholder cell, worked answer) of each exercise of a lesson, in order."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for cell, after in zip(cells, cells[1:]):
        if "exercise" in cell.get("metadata", {}).get("tags", []):
            answer = WORKED.search("".join(after["source"])) if after["cell_type"] == "markdown" else None
            assert answer, f"{path.name}: exercise cell {cell['id']} is not followed by its worked answer"
            found.append(("".join(cell["source"]), answer.group(1)))
    return found


def notebook_names():
    """What the lessons define before their exercises and the worked answers use."""
    return {"torch": torch, "nn": nn, "F": F, "math": math, "windows": shapes.adaptive_windows, "exercises": exercises}


@pytest.mark.parametrize("path", LESSONS, ids=[p.name[:2] for p in LESSONS])
def test_each_lessons_placeholders_are_not_written_yet_and_its_worked_answers_pass(path, capsys):
    found = exercises_of(path)
    assert len(found) >= 2, f"{path.name} has {len(found)} checked exercise(s)"
    names = notebook_names()
    for stub, answer in found:
        check, function = CHECK_CALL.search(stub).groups()
        exec(stub, names)  # the committed cell, as a learner first runs it
        said = capsys.readouterr().out
        assert said.startswith("not written yet: ") and said.count("\n") == 1, said
        assert getattr(exercises, check)(names[function]) is False
        capsys.readouterr()

        exec(answer, names)
        assert getattr(exercises, check)(names[function]) is True
        said = capsys.readouterr().out
        assert said.startswith(f"✓ {function}: right on ") and said.count("\n") == 1, said
        # a worked answer's last line that prints a value states it in its comment
        last = answer.strip().splitlines()[-1]
        if "#" in last and not last.startswith((" ", "return")):
            expression, comment = last.split("#", 1)
            value = eval(expression, names)
            assert str(value) in comment or f"{value:,}" in comment, (last, value)


def test_every_exercise_cell_ends_with_its_check():
    for path in LESSONS:
        for stub, _ in exercises_of(path):
            check, function = CHECK_CALL.search(stub).groups()
            assert stub.rstrip().endswith(f"exercises.{check}({function});"), stub
            assert hasattr(exercises, check), check


# ---------------------------------------------------------------------------------------------
# Typical mistakes, each named by the check (at least two per check)

def conv1x1_transposed(X, W, b):
    return (W.T @ X.flatten(2) + b[:, None]).unflatten(2, X.shape[2:])


def conv1x1_without_bias(X, W, b):
    return (W @ X.flatten(2)).unflatten(2, X.shape[2:])


def conv1x1_channels_last(X, W, b):
    return X.permute(0, 2, 3, 1) @ W.T + b


def params_without_biases(c_in, c_out, k, h_out, w_out):
    return c_in * c_out * k * k, c_out * h_out * w_out * c_in * k * k


def macs_with_k_not_k_squared(c_in, c_out, k, h_out, w_out):
    return c_in * c_out * k * k + c_out, c_out * h_out * w_out * c_in * k


def block(in_channels, out_channels, kernel_size, strides, padding, num_1x1, *, relu_last=True, stride_1x1=1,
          count=None):
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU()]
    for _ in range(num_1x1 if count is None else count):
        layers += [nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=stride_1x1), nn.ReLU()]
    return nn.Sequential(*(layers if relu_last else layers[:-1]))


def block_params_without_biases(c_in, c_out, k, num_1x1):
    return c_in * c_out * k * k + num_1x1 * c_out * c_out


def block_params_1x1_from_in_channels(c_in, c_out, k, num_1x1):
    return c_in * c_out * k * k + c_out + num_1x1 * (c_in * c_out + c_out)


def out_size_ceil(n, k, s=1, p=0, d=1):
    return math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1


def out_size_without_floor(n, k, s=1, p=0, d=1):
    return (n + 2 * p - d * (k - 1) - 1) / s + 1


def out_size_without_dilation(n, k, s=1, p=0, d=1):
    return (n + 2 * p - k) // s + 1


def smallest_input_one_short(layers):
    m = 1
    for k, s, p in reversed(layers):
        m = max((m - 1) * s + k - 2 * p, 1)
    return m - 1


def smallest_input_without_padding(layers):
    m = 1
    for k, s, p in reversed(layers):
        m = (m - 1) * s + k
    return m


def train_step_without_zero_grad(net, X, y, loss, optimizer):
    loss(net(X), y).backward()
    optimizer.step()


def train_step_without_step(net, X, y, loss, optimizer):
    optimizer.zero_grad()
    loss(net(X), y).backward()


def accuracy_in_training_mode(net, data_iter):
    with torch.no_grad():
        return torch.cat([net(X).argmax(1) == y for X, y in data_iter]).float().mean().item()


def accuracy_mean_of_batches(net, data_iter):
    net.eval()
    with torch.no_grad():
        accuracies = [(net(X).argmax(1) == y).float().mean().item() for X, y in data_iter]
    return sum(accuracies) / len(accuracies)


def accuracy_counted(net, data_iter):
    net.eval()
    with torch.no_grad():
        return sum(int((net(X).argmax(1) == y).sum()) for X, y in data_iter)


MISTAKES = [
    ("check_conv1x1", conv1x1_transposed, ["W transposed", "row o of W"]),
    ("check_conv1x1", conv1x1_without_bias, ["lacks the bias"]),
    ("check_conv1x1", conv1x1_channels_last, ["channels last"]),
    ("check_params_and_macs", params_without_biases, ["parameter count is 100", "should be 110", "biases"]),
    ("check_params_and_macs", macs_with_k_not_k_squared, ["MAC count is 3,079,296", "not c_in·k"]),
    ("check_nin_block", lambda *a: block(*a, relu_last=False), ["no ReLU after its conv number 3"]),
    ("check_nin_block", lambda *a: block(*a, stride_1x1=2), ["layer 2", "stride=(2, 2)", "stride=(1, 1)"]),
    ("check_nin_block", lambda *a: block(*a, count=2), ["num_1x1=1", "has 6 layers", "should have 4"]),
    ("check_nin_block_params", block_params_without_biases, ["745,472", "746,240", "biases are missing"]),
    ("check_nin_block_params", block_params_1x1_from_in_channels, ["664,320", "not from c_in"]),
    ("check_dilated_out_size", out_size_ceil, ["returned 55", "gives 54", "rounded up"]),
    ("check_dilated_out_size", out_size_without_floor, ["returned 54.25", "not a whole number"]),
    ("check_dilated_out_size", out_size_without_dilation, ["d=3", "dilation is missing"]),
    ("check_smallest_input", smallest_input_one_short, ["input of 66 pixels is too small", "smallest input is 67"]),
    ("check_smallest_input", smallest_input_without_padding, ["194 pixels fit too", "smallest input is 67"]),
    ("check_global_avg_pool", lambda X: X.sum(dim=(2, 3)), ["H·W = 20 times the mean", "a sum"]),
    ("check_global_avg_pool", lambda X: X.mean(dim=(1, 2)), ["averaged over axis 1 (channels) and axis 2 (height)"]),
    ("check_global_avg_pool", lambda X: X.mean(dim=(2, 3), keepdim=True), ["shape (2, 3, 1, 1)"]),
    ("check_avgpool_like", lambda n, out: (n // out, n // out), ["n = 7, out = 2", "AvgPool2d(3, stride=3) uses"]),
    ("check_avgpool_like", lambda n, out: (n // out,) * 2 if n % out == 0 else None,
     ["n = 7, out = 2", "AvgPool2d(4, stride=3) uses the same", "returned None"]),
    ("check_train_step", train_step_without_zero_grad, ["first batch's gradients", "zero_grad"]),
    ("check_train_step", train_step_without_step, ["weights did not change", "optimizer.step()"]),
    ("check_accuracy", accuracy_in_training_mode, ["training mode", "net.eval()"]),
    ("check_accuracy", accuracy_mean_of_batches, ["mean of the batches' accuracies"]),
    ("check_accuracy", accuracy_counted, ["returned 21", "21 of 73 right", "number of right answers"]),
]


@pytest.mark.parametrize("check, function, named", MISTAKES,
                         ids=[f"{c[6:]}-{getattr(f, '__name__', '')}-{i}" for i, (c, f, _) in enumerate(MISTAKES)])
def test_a_typical_mistake_is_named_in_one_sentence(check, function, named, capsys):
    assert getattr(exercises, check)(function) is False
    said = capsys.readouterr().out
    assert said.count("\n") == 1 and "Traceback" not in said, said
    for words in named:
        assert words in said, (words, said)


def test_the_learners_exception_is_named_not_shown_as_a_traceback(capsys):
    assert exercises.check_conv1x1(lambda X, W, b: X @ W) is False
    said = capsys.readouterr().out
    assert said.startswith("your function raised RuntimeError: ") and said.count("\n") == 1, said


def test_a_placeholder_that_returns_ellipsis_and_a_value_that_is_no_function(capsys):
    assert exercises.check_global_avg_pool(lambda X: ...) is False
    assert capsys.readouterr().out.startswith("not written yet: global_avg_pool(X)")
    assert exercises.check_global_avg_pool(3) is False
    assert "not int 3" in capsys.readouterr().out


def test_a_check_leaves_the_learners_random_numbers_as_they_were(capsys):
    torch.manual_seed(0)
    state = torch.get_rng_state().clone()
    exercises.check_nin_block(lambda *a: block(*a))
    exercises.check_accuracy(accuracy_in_training_mode)
    assert torch.equal(state, torch.get_rng_state())


def test_the_checks_import_only_torch_and_nin_lib():
    probe = ("import sys, nin_lib.exercises; "
             "print(sorted(m for m in ('matplotlib', 'ipywidgets', 'torchvision') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
