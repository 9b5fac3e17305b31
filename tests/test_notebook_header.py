"""The launch header (badges + Colab setup cell) of every lesson, and the README's launch block, are current."""
import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("notebook_header", ROOT / "tools" / "notebook_header.py")
nh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nh)

LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_repository_url_is_read_from_pyproject():
    url = nh.repository_url()
    assert url.startswith("https://github.com/")
    assert url in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_fallback_parser_matches_tomllib():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    tomllib = pytest.importorskip("tomllib")
    assert nh._parse_urls_fallback(text) == tomllib.loads(text)["project"]["urls"]
    tricky = '[project]\nname = "x"\n[project.urls]\n# comment\n"Bug Tracker" = \'https://e/b\'\nRepository = "https://github.com/a/b.git"  # c\n[tool.x]\nRepository = "no"\n'
    assert nh._parse_urls_fallback(tricky) == {"Bug Tracker": "https://e/b", "Repository": "https://github.com/a/b.git"}


def test_works_without_tomllib_as_on_python_3_9(monkeypatch):
    import ast
    ast.parse((ROOT / "tools" / "notebook_header.py").read_text(encoding="utf-8"), feature_version=(3, 9))
    monkeypatch.setitem(sys.modules, "tomllib", None)  # import tomllib now fails, as before Python 3.11
    monkeypatch.setitem(sys.modules, "tomli", None)
    assert nh.repository_url() == nh._parse_urls_fallback(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"))["Repository"].rstrip("/")


def test_repository_url_rejects_missing_and_non_github(tmp_path):
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match="Repository"):
        nh.repository_url(bad)
    bad.write_text('[project.urls]\nRepository = "https://gitlab.com/a/b"\n')
    with pytest.raises(ValueError, match="github.com/OWNER/REPO"):
        nh.repository_url(bad)
    bad.write_text('[project.urls]\nRepository = "https://github.com/a/b.git/"\n')
    assert nh.repository_url(bad) == "https://github.com/a/b"


def test_launch_addresses():
    url = "https://github.com/owner/repo"
    assert nh.colab_url(url, "03_x.ipynb") == \
        "https://colab.research.google.com/github/owner/repo/blob/main/notebooks/03_x.ipynb"
    assert nh.binder_url(url, "03_x.ipynb") == \
        "https://mybinder.org/v2/gh/owner/repo/main?urlpath=lab/tree/notebooks/03_x.ipynb"


def _lesson(path, minor=5):
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = minor
    nb.cells = [nbformat.v4.new_markdown_cell("# 09 · Test (测试)\n\nGoals."),
                nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("print(x)")]
    if minor < 5:
        for cell in nb.cells:
            cell.pop("id", None)
    nbformat.write(nb, path)
    return path


def test_header_insert_idempotent_and_stale(tmp_path):
    url = "https://github.com/owner/repo"
    path = _lesson(tmp_path / "09_test.ipynb")
    assert nh.check_notebook(path, url) == "has no launch header"
    assert nh.update_notebook(path, url) is True
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    kinds = [(c.cell_type, nh.TAG in c.metadata.get("tags", [])) for c in nb.cells]
    assert kinds == [("markdown", False), ("markdown", True), ("code", True), ("code", False), ("code", False)]
    assert nh.colab_url(url, "09_test.ipynb") in nb.cells[1].source
    assert nh.binder_url(url, "09_test.ipynb") in nb.cells[1].source
    assert "git+https://github.com/owner/repo.git" in nb.cells[2].source
    assert nh.check_notebook(path, url) is None

    before = path.read_bytes()
    assert nh.update_notebook(path, url) is False
    assert path.read_bytes() == before

    # a new address makes the header stale; updating replaces it in place, without duplicating it
    assert "stale" in nh.check_notebook(path, "https://github.com/other/repo")
    nh.update_notebook(path, "https://github.com/other/repo")
    nb = nbformat.read(path, as_version=4)
    assert sum(nh.TAG in c.metadata.get("tags", []) for c in nb.cells) == 2
    assert "other/repo" in nb.cells[1].source and "owner/repo" not in nb.cells[1].source

    # a hand-edited setup cell, or a header moved away from its place, is stale too
    nb.cells[2].source += "\nprint('hi')"
    nbformat.write(nb, path)
    assert "stale" in nh.check_notebook(path, "https://github.com/other/repo")
    nb.cells[2].source = nh.setup_source("https://github.com/other/repo")
    nb.cells.append(nb.cells.pop(1))
    nbformat.write(nb, path)
    assert "stale" in nh.check_notebook(path, "https://github.com/other/repo")


def test_header_keeps_execution_count_and_old_format(tmp_path):
    url = "https://github.com/owner/repo"
    path = _lesson(tmp_path / "09_test.ipynb", minor=4)
    nh.update_notebook(path, url)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)  # no cell ids in an nbformat 4.4 notebook
    assert "id" not in nb.cells[1]
    nb.cells[2].execution_count = 1
    nb.cells[2].source = "# old"
    nbformat.write(nb, path)
    nh.update_notebook(path, url)
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[2].execution_count == 1 and nb.cells[2].source == nh.setup_source(url)


def test_header_without_title_goes_first(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    out = nh.apply_header(nb, "https://github.com/o/r", "a.ipynb")
    assert [c.cell_type for c in out.cells] == ["markdown", "code", "code"]
    assert nh.TAG not in out.cells[2].metadata.get("tags", [])


def test_setup_cell_does_nothing_off_colab(capsys):
    assert "google.colab" not in sys.modules
    exec(compile(nh.setup_source("https://github.com/o/r"), "<setup>", "exec"), {})
    assert capsys.readouterr() == ("", "")


def on_colab(monkeypatch, returncode, stderr=""):
    """Pretend to be on Colab with a pip that exits with ``returncode``: the list of what the cell did."""
    import importlib.metadata
    import subprocess
    import types

    calls = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("widgets"))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)

    def pip(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, returncode, "", stderr)

    monkeypatch.setattr(subprocess, "run", pip)
    monkeypatch.setattr(importlib.metadata, "version", {nh.DISTRIBUTION: "9.9.9"}.__getitem__)
    return calls


SOURCE = "git+https://github.com/o/r.git"


def test_setup_cell_on_colab_installs_says_what_and_enables_widgets(monkeypatch, capsys):
    calls = on_colab(monkeypatch, 0)
    exec(compile(nh.setup_source("https://github.com/o/r"), "<setup>", "exec"), {})
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", SOURCE], "widgets"]
    assert capsys.readouterr() == (f"nin_lib 9.9.9 installed from {SOURCE}\n", "")


def test_setup_cell_on_colab_explains_a_failed_install_in_one_sentence(monkeypatch, capsys):
    why = "fatal: unable to access 'https://github.com/o/r.git/': Could not resolve host: github.com"
    calls = on_colab(monkeypatch, 1, f"  error: subprocess-exited-with-error\n{why}\n")
    exec(compile(nh.setup_source("https://github.com/o/r"), "<setup>", "exec"), {})  # no traceback
    assert calls[-1] == "widgets"
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.endswith(".\n")
    assert err.startswith(f"nin_lib was not installed from {SOURCE} ({why}): check that this runtime is online")
    assert "[project.urls] Repository in pyproject.toml" in err and "python tools/notebook_header.py" in err


def test_setup_cell_reports_the_version_of_this_project():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    name = re.search(r'^\[project\]\s*\n(?:.*\n)*?name\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)
    assert nh.DISTRIBUTION == name


def test_setup_cell_runs_on_colab_pythons():
    import ast
    ast.parse(nh.setup_source("https://github.com/o/r"), feature_version=(3, 9))  # no 3.12-only f-strings


def test_readme_block(tmp_path):
    url = "https://github.com/owner/repo"
    lesson = _lesson(tmp_path / "09_test.ipynb")
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nno block\n")
    assert "no launch block" in nh.readme_problem(readme, url, [lesson])
    readme.write_text(f"# Title\n\n{nh.README_START}\nold\n{nh.README_END}\n\nmore\n")
    assert nh.readme_problem(readme, url, [lesson]) == "has a stale launch block"
    text = nh.readme_text(readme.read_text(), url, [lesson])
    assert "| [09 · Test (测试)](notebooks/09_test.ipynb) |" in text
    assert nh.binder_url(url, "09_test.ipynb") in text and text.endswith("\n\nmore\n")
    readme.write_text(text)
    assert nh.readme_problem(readme, url, [lesson]) is None


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_lesson_header_is_current(path):
    problem = nh.check_notebook(path, nh.repository_url())
    assert problem is None, f"{path.name} {problem}; run: python tools/notebook_header.py"


def test_readme_launch_block_is_current():
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.skip("README.md does not exist yet")
    problem = nh.readme_problem(readme, nh.repository_url(), LESSONS)
    assert problem is None, f"README.md {problem}; run: python tools/notebook_header.py"


def test_check_command_exit_status(tmp_path, capsys):
    path = _lesson(tmp_path / "09_test.ipynb")
    assert nh.main(["--check", str(path)]) == 1
    assert "has no launch header" in capsys.readouterr().out
    assert nh.main([str(path)]) == 0
    assert nh.main(["--check", str(path)]) == 0
    assert nh.main(["--check", str(tmp_path / "missing.ipynb")]) == 2
