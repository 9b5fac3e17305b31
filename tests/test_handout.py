"""``python -m nin_lib handout DIR``: student copies without answers or exercise outputs, on a small lesson and on the
real ones (whose exercise checks must still run and say "not written yet")."""
import re
from pathlib import Path

import pytest

from conftest import run_cli as run

nbformat = pytest.importorskip("nbformat")
v4 = nbformat.v4

QUESTION = "## Exercises\n\n1. What does a 1×1 conv mix?"
EXERCISE = "def conv1x1(X, W, b):\n    ...\nexercises.check_conv1x1(conv1x1)"


def printed(text, count):
    return [v4.new_output("stream", name="stdout", text=text)], count


def lesson():
    """A lesson with answers in prose, an answers-only cell, a hint that stays, an exercise and two other outputs."""
    cells = [
        v4.new_markdown_cell(f"{QUESTION}\n\n<details><summary>Answer 1</summary>\n\nChannels only.\n</details>\n\n"
                             "<details>\n<summary>Hint</summary>\n\nLook at one pixel.\n</details>\n\n### Then"),
        v4.new_code_cell(EXERCISE, metadata={"tags": ["exercise", "nbval-check-output"]}),
        v4.new_markdown_cell("<details><summary>Worked answer</summary>\n\n```python\nreturn X\n```\n</details>\n"
                             "<details open><summary>Answers</summary>\nAll of them.\n</details>"),
        v4.new_code_cell("print(6 * 7)", metadata={"tags": ["nbval-check-output"]}),
        v4.new_code_cell("print('timing')"),
        v4.new_code_cell("# Answer 1, worked out in code\nprint('channels only')", metadata={"tags": ["answer"]}),
    ]
    (cells[1].outputs, cells[1].execution_count) = printed("not written yet: conv1x1\n", 3)
    (cells[3].outputs, cells[3].execution_count) = printed("42\n", 4)
    (cells[4].outputs, cells[4].execution_count) = printed("timing\n", 5)
    return v4.new_notebook(cells=cells)


@pytest.fixture
def lessons(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(lesson(), folder / "01_lesson.ipynb")
    return folder


def test_handout_removes_the_answers_and_clears_the_exercises_only(lessons, tmp_path):
    out, before = tmp_path / "class", (lessons / "01_lesson.ipynb").read_bytes()
    r = run("handout", out, "--lessons", lessons)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{out / '01_lesson.ipynb'}: 4 answer(s) removed, outputs of 1 exercise cell(s) "
                                     "cleared", f"wrote 1 student copies to {out}"]
    copy = nbformat.read(out / "01_lesson.ipynb", as_version=4)
    nbformat.validate(copy)
    prose, exercise, checked, timing = copy.cells  # the answer-tagged code cell is gone
    assert prose.source == f"{QUESTION}\n\n<details>\n<summary>Hint</summary>\n\nLook at one pixel.\n</details>\n\n### Then"
    assert exercise.source == EXERCISE and exercise.outputs == [] and exercise.execution_count is None
    assert exercise.metadata.tags == ["exercise"]
    original = lesson().cells
    assert (checked.outputs, checked.execution_count) == (original[3].outputs, 4)
    assert (timing.outputs, timing.execution_count) == (original[4].outputs, 5)
    assert (lessons / "01_lesson.ipynb").read_bytes() == before, "the lesson itself changed"


def test_handout_overwrites_a_folder_with_force_only(lessons, tmp_path):
    out = tmp_path / "class"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused = run("handout", out, "--lessons", lessons)
    assert refused.returncode == 2 and f"DIR {out} is not empty" in refused.stderr and "--force" in refused.stderr
    assert not (out / "01_lesson.ipynb").exists()
    assert run("handout", out, "--lessons", lessons, "--force").returncode == 0
    assert (out / "01_lesson.ipynb").exists() and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("name, says", [("notebooks/copies", "inside the lessons folder"),
                                        ("notebooks", "inside the lessons folder"), ("notes.txt", "is a file")])
def test_handout_refuses_a_folder_in_the_lessons_or_a_file(lessons, tmp_path, name, says):
    out = tmp_path / name
    (tmp_path / "notes.txt").write_text("mine")
    r = run("handout", out, "--lessons", lessons)
    assert r.returncode == 2 and f"DIR {out}" in r.stderr and says in r.stderr and r.stdout == ""
    assert sorted(p.name for p in lessons.iterdir()) == ["01_lesson.ipynb"]


def test_handout_refuses_a_lessons_folder_without_notebooks(tmp_path):
    r = run("handout", tmp_path / "class", "--lessons", tmp_path)
    assert r.returncode == 2 and f"--lessons {tmp_path} holds no notebooks" in r.stderr
    assert not (tmp_path / "class").exists()


# The real lessons: every answer gone, exercise cells cleared, everything else as committed, and the checks still run

ROOT = Path(__file__).resolve().parent.parent
ANSWER_SUMMARY = re.compile(r"<summary[^>]*>\s*(?:Answer|Worked answer)", re.I)


def exercise(cell):
    return "exercise" in cell.metadata.get("tags", [])


def code_cells(notebook):
    """The code cells a student copy keeps as they are: all but the exercises and the answers worked out in code."""
    return {cell.id: cell for cell in notebook.cells if cell.cell_type == "code" and not exercise(cell)
            and "answer" not in cell.metadata.get("tags", [])}


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    out = tmp_path_factory.mktemp("handout") / "class"
    r = run("handout", out)
    assert r.returncode == 0, r.stderr
    return out


def test_student_copies_of_the_lessons_have_no_answers_and_keep_every_other_output(copies):
    lessons = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in copies.iterdir()) == [p.name for p in lessons]
    for path in lessons:
        original, copy = nbformat.read(path, as_version=4), nbformat.read(copies / path.name, as_version=4)
        nbformat.validate(copy)
        assert [c for c in original.cells if c.cell_type == "markdown" and ANSWER_SUMMARY.search(c.source)], path.name
        assert not [c.source for c in copy.cells if c.cell_type == "markdown" and ANSWER_SUMMARY.search(c.source)]
        exercises = [c for c in copy.cells if exercise(c)]
        assert len(exercises) >= 2 or path.name[:2] not in ("01", "02", "03", "04", "05"), path.name
        assert [(c.outputs, c.execution_count) for c in exercises] == [([], None)] * len(exercises), path.name
        assert code_cells(copy) == code_cells(original), f"{path.name}: a cell other than an exercise changed"
        assert not [c for c in copy.cells if "answer" in c.metadata.get("tags", [])], f"{path.name}: an answer cell"


@pytest.mark.parametrize("lesson", ["01_one_by_one_convolutions.ipynb"])
def test_a_student_copy_runs_and_its_checks_say_not_written_yet(copies, lesson, monkeypatch):
    """The copy runs top to bottom in fast mode (what nbval --nbval-lax needs of it: the cells it compares are the
    committed ones, kept as they were) and every exercise's check reports its placeholder."""
    nbclient = pytest.importorskip("nbclient")
    copy = nbformat.read(copies / lesson, as_version=4)
    monkeypatch.setenv("NIN_FAST", "1")
    nbclient.NotebookClient(copy, timeout=300, resources={"metadata": {"path": str(copies)}}).execute()
    said = ["".join(o.get("text", "") for o in c.outputs) for c in copy.cells if exercise(c)]
    assert said and all("not written yet" in text for text in said), said
