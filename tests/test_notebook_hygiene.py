"""Notebook hygiene: every lesson is committed as a clean top-to-bottom run and is re-run by nbval.

For every ``notebooks/*.ipynb``: its code cells ran once each, in order, in a fresh kernel (execution
counts 1, 2, …, n); no stored error output; no local paths (``/tmp/``, ``/root/``, ``/home/<user>/``,
``/Users/<user>/``, ``/work/``, ``C:\\Users\\``) in any output; a valid notebook; and the test command
(``make test``, the README's, CI's) collects it under nbval.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LOCAL_PATH = re.compile(r"(/tmp/|/root/|/home/[^/\s\"']+/|/Users/[^/\s\"']+/|/work/|[A-Za-z]:\\\\Users\\\\)")


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def output_text(output):
    """Everything an output shows, as one string (stream text, tracebacks, every mime type)."""
    parts = [output.get("text", ""), output.get("ename", ""), output.get("evalue", "")]
    parts += output.get("traceback", [])
    for value in output.get("data", {}).values():
        parts.append(value if isinstance(value, str) else json.dumps(value))
    return "".join("".join(p) if isinstance(p, list) else str(p) for p in parts)


def test_the_notebooks_are_the_lessons_the_readme_lists():
    listed = re.findall(r"^\| \d\d \| \[[^]]+\]\(notebooks/([^)]+\.ipynb)\)", (ROOT / "README.md").read_text(), re.M)
    assert listed == [p.name for p in NOTEBOOKS] and len(listed) == 8, listed


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, load(request.param)


def test_is_a_valid_notebook(notebook):
    nbformat = pytest.importorskip("nbformat")
    path, _ = notebook
    nbformat.validate(nbformat.read(str(path), as_version=4))


def test_code_cells_ran_once_each_in_order_from_a_fresh_kernel(notebook):
    path, nb = notebook
    counts = [c.get("execution_count") for c in code_cells(nb) if source(c).strip()]
    assert counts, f"{path.name} has no code"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts[:12]}{' …' if len(counts) > 12 else ''}; run it top to bottom "
        "in a fresh kernel (jupyter nbconvert --to notebook --execute --inplace)")
    empty = [c.get("execution_count") for c in code_cells(nb) if not source(c).strip()]
    assert all(n is None for n in empty), f"{path.name}: an empty code cell has an execution count"


def test_no_stored_errors(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name}, cell {i}: {output.get('ename')}: {output.get('evalue')}"
            assert "Traceback (most recent call last)" not in output_text(output), f"{path.name}, cell {i}: a traceback"


def test_no_local_paths_in_outputs(notebook):
    path, nb = notebook
    found = []
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            text = output_text(output)
            for m in LOCAL_PATH.finditer(text):
                found.append(f"cell {i}: …{text[max(0, m.start() - 40):m.end() + 40]}…")
    assert not found, f"{path.name} shows local paths:\n" + "\n".join(found[:5])


def test_the_test_command_runs_every_notebook_under_nbval():
    makefile = (ROOT / "Makefile").read_text()
    command = next(line.strip() for line in makefile.splitlines() if "pytest" in line and line.startswith("\t"))
    assert "--nbval-lax notebooks" in command and " tests" in command, command
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval-lax", "notebooks",
                        "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    collected = {line.split("::")[0] for line in r.stdout.splitlines() if "::" in line}
    expected = {f"notebooks/{p.name}" for p in NOTEBOOKS}
    assert expected <= collected, f"not collected by nbval: {sorted(expected - collected)}"
