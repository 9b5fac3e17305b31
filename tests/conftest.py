"""Shared test fixtures and helpers. Data comes from NIN_DATA_DIR (CI points it at the shared Fashion-MNIST folder)."""
import contextlib
import io
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def fmnist():
    """All of Fashion-MNIST, loaded once per test session: from NIN_DATA_DIR, or downloaded into the per-user
    cache where there is a network; without either, the tests that need it are skipped with the reason."""
    from nin_lib import data
    try:
        return data.load_fashion_mnist()
    except data.DataError as error:
        pytest.skip(f"Fashion-MNIST is not available here, so this test cannot run: {error}")


@pytest.fixture
def normal_mode(monkeypatch):
    """Tests run under NIN_FAST=1 (make test); these need the normal mode."""
    monkeypatch.delenv("NIN_FAST", raising=False)


def run_cli(*args):
    """``python -m nin_lib ARGS`` in this process (``cli.main``): exit status, standard output and error."""
    from nin_lib import cli
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


# ---------------------------------------------------------------------------------------------
# Tiny training runs (test_train, test_reliability): a 28-px NiN at a tenth of the width, 256 training and 128
# test images, 4 batches an epoch; dropout and flips on, so that resuming must restore the random-number states

TINY = dict(width=0.1, batch_size=64, subset=256, test_subset=128, num_epochs=2, device="cpu",
            eval_batch_size=128, dropout=0.5, flip=True)


def tiny_run(fmnist, **overrides):
    """The quick preset shrunk to seconds (dropout, flips, momentum and one-cycle all on)."""
    from nin_lib import presets
    return presets.build_run("quick", data=fmnist, **{**TINY, **overrides})


def quiet(*callbacks):
    """``fit`` callbacks without a progress bar or printed reason, then ``callbacks``."""
    from nin_lib import train
    return [train.ProgressBar(False), *callbacks]


def weights(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def same_weights(a, b):
    import torch
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def finite(net):
    import torch
    return all(torch.isfinite(v).all() for v in net.state_dict().values() if v.is_floating_point())


def numbers(history):
    """What must be equal between an interrupted-and-resumed run and an uninterrupted one."""
    keys = ("epoch", "loss", "train_acc", "test_acc", "images", "lr")
    return [{k: e[k] for k in keys} for e in history.epochs]


# The ten lines the chapter prints for its net at 224×224 (test_models, test_d2l_en)
SEED_LINES = [
    "Sequential output shape:\t torch.Size([1, 96, 54, 54])",
    "MaxPool2d output shape:\t torch.Size([1, 96, 26, 26])",
    "Sequential output shape:\t torch.Size([1, 256, 26, 26])",
    "MaxPool2d output shape:\t torch.Size([1, 256, 12, 12])",
    "Sequential output shape:\t torch.Size([1, 384, 12, 12])",
    "MaxPool2d output shape:\t torch.Size([1, 384, 5, 5])",
    "Dropout output shape:\t torch.Size([1, 384, 5, 5])",
    "Sequential output shape:\t torch.Size([1, 10, 5, 5])",
    "AdaptiveAvgPool2d output shape:\t torch.Size([1, 10, 1, 1])",
    "Flatten output shape:\t torch.Size([1, 10])",
]


def png(fig):
    """A matplotlib figure as PNG bytes (a view's tests compare pictures before and after a control moves)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
