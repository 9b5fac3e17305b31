"""The command line: the seed's table, and one sentence with exit status 2 for bad arguments.

Most cases call ``cli.main`` in this process; two run ``python -m nin_lib`` for real (the entry point, the exit
status a shell sees, no traceback).
"""
import subprocess
import sys

import pytest

from conftest import run_cli as run
from test_models import SEED_LINES


def real(*args):
    return subprocess.run([sys.executable, "-m", "nin_lib", *args], capture_output=True, text=True, timeout=120)


def test_trace_prints_the_seed_lines():
    r = real("trace")
    assert r.returncode == 0 and r.stdout.splitlines() == SEED_LINES


def test_a_bad_argument_in_a_real_process_is_exit_2_and_one_line():
    r = real("trace", "--input-size", "66")
    assert r.returncode == 2 and "66×66 input is too small for this net" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_trace_table():
    r = run("trace", "--table", "--model", "nin28")
    assert r.returncode == 0 and "1,255,718" in r.stdout and "1×10×4×4" in r.stdout


@pytest.mark.parametrize("args, says", [
    (("trace", "--input-size", "66"), "66×66 input is too small for this net: layer 5 (MaxPool2d 3×3/2)"),
    (("trace", "--input-size", "abc"), "'abc' is not a whole number"),
    (("trace", "--input-size", "0"), "is not allowed; use a whole number of pixels"),
    (("trace", "--model", "vgg"), "invalid choice: 'vgg'"),
    (("fly",), "invalid choice: 'fly'"),
    ((), "the following arguments are required"),
])
def test_bad_arguments_exit_2_with_one_sentence(args, says):
    r = run(*args)
    assert r.returncode == 2
    assert says in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
