"""The library's structure (nin_lib/__init__.py is the map): every module is on the map, imports go one way
(a module imports only modules above it on the map), and the package needs nothing outside itself."""
import ast
from pathlib import Path

import nin_lib

PACKAGE = Path(nin_lib.__file__).resolve().parent


def modules():
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def imported(path):
    """The nin_lib modules a file imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:  # from . import x, y
                found.update(alias.name for alias in node.names)
            elif node.level == 1:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.module == "nin_lib":  # from nin_lib import x
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("nin_lib."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("nin_lib."))
    return found


def test_every_module_is_on_the_map_once():
    assert sorted(nin_lib.LAYERS) == modules()
    # the map's second column (from column 18, up to the first double space) names the modules of each line
    rows = [line[18:].split("  ")[0] for line in nin_lib.__doc__.splitlines() if line.startswith("    ") and line.strip()]
    listed = [name for row in rows for name in row.split(", ")]
    assert listed == list(nin_lib.LAYERS), "the map in nin_lib/__init__.py lists the modules in LAYERS order"


def test_imports_go_one_way():
    order = {name: i for i, name in enumerate(nin_lib.LAYERS)}
    wrong = []
    for name in modules():
        for other in imported(PACKAGE / f"{name}.py"):
            if other in order and order[other] >= order[name]:
                wrong.append(f"{name} imports {other}, which is not above it on the map")
    assert not wrong, wrong


def test_the_package_loads_no_file_from_outside_itself():
    for name in modules():
        text = (PACKAGE / f"{name}.py").read_text()
        assert "spec_from_file_location" not in text, name
        assert "benchmarks/" not in text.replace("``benchmarks/``", "").replace("benchmarks/experiments.py", ""), name


def test_only_widgets_imports_ipywidgets():
    for name in modules():
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert any(m.split(".")[0] == "ipywidgets" for m in names) == (name == "widgets"), name
