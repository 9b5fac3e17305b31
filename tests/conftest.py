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
