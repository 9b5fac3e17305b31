"""Shared test fixtures. Data comes from NIN_DATA_DIR (CI points it at the shared Fashion-MNIST folder)."""
import pytest


@pytest.fixture(scope="session")
def fmnist():
    """All of Fashion-MNIST, loaded once per test session."""
    from nin_lib import data
    return data.load_fashion_mnist(allow_download=False)
