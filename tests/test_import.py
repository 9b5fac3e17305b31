"""Importing nin_lib does nothing by itself: no ipywidgets, no network, no seeding, no device probing, no threads set."""
import subprocess
import sys

PROBE = r"""
import socket, sys
import torch
def forbidden(*a, **k):
    raise AssertionError("network touched at import")
socket.socket.connect = forbidden
socket.create_connection = forbidden
torch.cuda.is_available = lambda: (_ for _ in ()).throw(AssertionError("device probed at import"))
state = torch.get_rng_state().clone()
threads = torch.get_num_threads()
torch.set_num_threads = lambda n: (_ for _ in ()).throw(AssertionError("threads set at import"))
import random; py_state = random.getstate()
import nin_lib
for name in nin_lib.LAYERS:
    if name != "widgets":
        __import__("nin_lib." + name)
assert torch.get_num_threads() == threads
assert torch.equal(state, torch.get_rng_state()), "torch seeded at import"
assert random.getstate() == py_state, "random seeded at import"
assert "ipywidgets" not in sys.modules, "ipywidgets imported"
print("clean")
"""


def test_import_has_no_side_effects():
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "clean"
