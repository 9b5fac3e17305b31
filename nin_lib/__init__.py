"""nin_lib: the helper library of the NiN (Network in Network) lessons.

Importing the package does nothing by itself: no seeding, no device probing, no
downloads and no ipywidgets import. Submodules load on first use, e.g.
``nin_lib.models`` or ``from nin_lib import shapes``.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = ("runtime", "data", "models", "shapes", "train", "presets", "viz", "widgets", "d2l")
__all__ = list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
