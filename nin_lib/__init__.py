"""nin_lib: the helper library of the NiN (Network in Network) lessons. The map, in tiers, lowest first; a module
imports only modules above it (``LAYERS``), never one below:

    core          checks     the one sentence a user's bad value gets (``Refusal``)
                  runtime    fast mode, the device and its policy (bf16, channels_last), CPU threads, seeding, files
                  data       Fashion-MNIST: find, download, verify, load; one subset rule; batches on the device
                  models     nin_block and nin(): the only place a NiN (or a variant of it) is built
                  shapes     layer-by-layer tracing: shapes, parameters, MACs, receptive field, smallest input
                  resources  memory and CPU time of a run from counted bytes and FLOPs, in GiB and seconds
                  train      fit (a loop on one screen, everything else a callback), evaluate, History, checkpoints
    recipes       presets    named, checked recipes (d2l, improved, quick, maps) and the run built from one
    results       records    recorded runs and shipped weights (their hashes checked)
                  experiments, verdicts   the chapter's claims as seeded experiments, and what a grid says
    views         viz, widgets            plots, and the ipywidgets panels over them
    book facades  book, d2l_en, d2l       the book's names (both editions) on nin_lib
    exercises     exercises  the checks of the lessons' write-it-yourself exercises (lessons 01-05)
    command line  cli        python -m nin_lib trace | train | records | handout

Importing the package does nothing by itself: no seeding, no device probing, no thread setting, no
downloads and no ipywidgets import. Submodules load on first use, e.g. ``nin_lib.models`` or
``from nin_lib import shapes``.
"""
import importlib

__version__ = "0.2.0"

LAYERS = ("checks", "runtime", "data", "models", "shapes", "resources", "train", "presets", "records", "experiments",
          "verdicts", "viz", "widgets", "book", "d2l_en", "d2l", "exercises", "cli")
__all__ = list(LAYERS)


def __getattr__(name):
    if name in LAYERS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
