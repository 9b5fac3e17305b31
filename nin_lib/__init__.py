"""nin_lib: the helper library of the NiN (Network in Network) lessons. The map, lowest layer first; a module
imports only modules above it in this list, never one below:

    checks       the one sentence every bad argument gets
    runtime      fast mode, device and its policy (bf16, channels_last), CPU threads, memory, seeding, atomic writes
    data         Fashion-MNIST: find, download, verify, load; batches made on the training device
    models       nin_block and nin(): the only place a NiN (or a variant of it) is built
    shapes       layer-by-layer tracing: shapes, parameters, MACs, receptive field, smallest input, memory
    train        fit, evaluate, History, callbacks, checkpoints
    presets      named, checked recipes (d2l, improved, quick) and the run built from one
    records      recorded runs and trained weights shipped with the package, their hashes checked
    experiments  the chapter's claims as seeded experiments (lesson 06): configurations, runs, grids
    verdicts     what a grid says: tables, comparisons over seeds, verdicts on the claims computed from the numbers
    viz          plots: image grids, live curves, feature maps, class confidence maps, parameter bars
    widgets      ipywidgets panels over the functions above
    book         the book's batches and how much of its run happens here (both editions)
    d2l_en       d2l-en's Classifier, Trainer, FashionMNIST on nin_lib
    d2l          the book's names (d2l-zh's train_ch6, d2l-en's Classifier/Trainer) on nin_lib
    bench        the benchmarks' engine (``python -m nin_lib bench``), the book's path among them
    cli          the command line: ``python -m nin_lib trace | train | bench | records``

Importing the package does nothing by itself: no seeding, no device probing, no thread setting, no
downloads and no ipywidgets import. Submodules load on first use, e.g. ``nin_lib.models`` or
``from nin_lib import shapes``.
"""
import importlib

__version__ = "0.2.0"

LAYERS = ("checks", "runtime", "data", "models", "shapes", "train", "presets", "records", "experiments", "verdicts",
          "viz", "widgets", "book", "d2l_en", "d2l", "bench", "cli")
__all__ = list(LAYERS)


def __getattr__(name):
    if name in LAYERS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
