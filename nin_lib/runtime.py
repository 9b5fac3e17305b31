"""Run-time choices shared by every lesson: fast mode, device, seeding (setup cell of each lesson)."""
import os
import random

import torch

FAST_ENV = "NIN_FAST"


def fast_mode():
    """True when ``NIN_FAST`` is set to a true value: every lesson then runs in seconds on a CPU."""
    value = os.environ.get(FAST_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def fast(normal, quick):
    """Pick ``quick`` in fast mode and ``normal`` otherwise (the one place notebooks shrink work)."""
    return quick if fast_mode() else normal


DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(name="auto", verbose=False):
    """Return the torch.device named by ``name``: 'auto' picks CUDA, then Apple MPS, then CPU.

    A requested device that is not there is an error, never a silent fallback.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str) or name.split(":")[0] not in DEVICES:
        raise ValueError(f"device {name!r} is not known; choose one of {', '.join(DEVICES)}.")
    kind = name.split(":")[0]
    if kind == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif _mps_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    elif kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but this machine has no CUDA GPU; "
                         "use 'cpu' or 'auto'.")
    elif kind == "mps" and not _mps_available():
        raise ValueError(f"device {name!r} was requested but Apple MPS is not available here; "
                         "use 'cpu' or 'auto'.")
    else:
        device = torch.device(name)
    if verbose:
        print(f"device: {describe_device(device)}")
    return device


def describe_device(device):
    """A short human name for a device, e.g. 'cuda (NVIDIA H100 80GB HBM3)' or 'cpu (2 threads)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def seed_everything(seed):
    """Seed Python, torch (CPU and CUDA) and, if present, NumPy; called by setup cells, never at import."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed {seed!r} is not allowed; use a whole number >= 0.")
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional for the library itself
        return
    np.random.seed(seed % 2**32)
