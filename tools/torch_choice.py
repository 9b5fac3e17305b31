"""Print the pip arguments that pick the torch/torchvision wheels for ``make lab`` and ``make test``.

    python3 tools/torch_choice.py                 # TORCH from the environment, else auto
    python3 tools/torch_choice.py --torch cpu     # cpu | cuda | default | auto

auto: PyTorch's CPU-only wheels (about 200 MB) when this machine has no NVIDIA GPU and the CPU wheel index
answers within a few seconds; otherwise PyPI's default wheels (on Linux the CUDA build, about 6 GB with its
CUDA libraries). cpu always adds the CPU wheel index; cuda and default use PyPI as it is. The arguments go
to standard output (an empty line for PyPI as it is), one sentence on the choice to standard error.
Standard library only: it runs before the virtual environment exists.
"""
import argparse
import os
import shutil
import subprocess
import sys
import threading
import urllib.request

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHOICES = ("auto", "cpu", "cuda", "default")
PROBE_SECONDS = 3.0


def has_nvidia_gpu():
    """True when ``nvidia-smi`` is on PATH and lists at least one GPU."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return False
    try:
        listed = subprocess.run([command, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def index_answers(url, timeout=PROBE_SECONDS):
    """True when ``url`` answers an HTTP GET without an error status within ``timeout`` seconds in all."""
    answered = []

    def probe():
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                answered.append(response.status < 400)
        except (OSError, ValueError):
            answered.append(False)

    worker = threading.Thread(target=probe, daemon=True)  # a name lookup can outlast the socket timeout
    worker.start()
    worker.join(timeout)
    return bool(answered and answered[0])


def choose(torch, index=CPU_INDEX, timeout=PROBE_SECONDS):
    """(pip arguments, one sentence saying why) for the TORCH value ``torch``."""
    given, torch = torch, (torch or "auto").strip().lower()
    if torch not in CHOICES:
        raise ValueError(f"TORCH={given!r} is not a choice; use TORCH=auto (the default), cpu, cuda or default.")
    cpu = ["--extra-index-url", index]
    if torch == "cpu":
        return cpu, f"torch: CPU-only wheels from {index} (TORCH=cpu)."
    if torch in ("cuda", "default"):
        return [], f"torch: PyPI's default wheels (TORCH={torch})."
    if has_nvidia_gpu():
        return [], "torch: PyPI's default wheels, with CUDA, since nvidia-smi lists a GPU (TORCH=cpu for CPU-only)."
    if index_answers(index, timeout):
        return cpu, (f"torch: CPU-only wheels from {index}, since there is no NVIDIA GPU here "
                     "(TORCH=default for PyPI's CUDA build).")
    return [], (f"torch: PyPI's default wheels, since {index} did not answer within {timeout:g} s "
                "(TORCH=cpu to insist on the CPU-only wheels).")


def seconds(text):
    """A positive number of seconds, for ``--timeout``."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default=os.environ.get("TORCH", "auto"),
                        help="auto (default), cpu, cuda or default; the TORCH environment variable sets it too")
    parser.add_argument("--index", default=CPU_INDEX, help=f"the CPU wheel index (default {CPU_INDEX})")
    parser.add_argument("--timeout", type=seconds, default=PROBE_SECONDS,
                        help=f"seconds to wait for the index to answer (default {PROBE_SECONDS:g})")
    args = parser.parse_args(argv)
    try:
        pip_args, why = choose(args.torch, args.index, args.timeout)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(why, file=sys.stderr)
    print(" ".join(pip_args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
