"""The lessons' prose carries no measured figure: every speed, time or accuracy a lesson states is printed by a
cell (from the run on the page or from a record, with where and when). Markdown explains; outputs carry the numbers.

Derived facts (parameter counts, shapes, MACs, 1/10 as chance) stay welcome in prose; what fails here is a number
with images/s or examples/s, with seconds, minutes or hours, a speed-up written as "N×", a test accuracy, or a
GPU's model name. nbval markers live in cell tags, never in the learner's code.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

NUMBER = r"\d(?:[\d,]*\d)?(?:\.\d+)?"
FASTER = r"(?:as\s+fast|faster|slower|quicker|the\s+(?:book|speed|throughput|examples|images)|as\s+many\s+images)"
FIGURES = [
    ("a speed", re.compile(rf"{NUMBER}\s*(?:images|examples|img)\s*(?:/\s*s(?:ec)?\b|per second)", re.I)),
    ("a time", re.compile(rf"(?<![\w.×/]){NUMBER}(?:\s+s|\s*(?:sec|seconds?|min|minutes?|hours?))\b(?![\w×/])",
                          re.I)),
    ("a speed-up", re.compile(rf"(?<![\w.×]){NUMBER}\s*(?:×|times)\s*{FASTER}", re.I)),
    ("an accuracy", re.compile(r"(?:accuracy|acc)\b[^.\n|]{0,40}?\b0\.\d{2,}", re.I)),
    ("an accuracy", re.compile(r"\b0\.\d{2,}\b[^.\n|]{0,25}(?:test|train)?\s*accuracy", re.I)),
    ("an accuracy", re.compile(rf"{NUMBER}\s*%\s*(?:test\s+|train\s+)?accuracy", re.I)),
    ("a GPU's name", re.compile(r"\b(?:H100|H200|A100|V100|A10G|T4|L4|RTX\s?\d{4})\b")),
]
# how the project was made is not the learner's business
PROCESS_WORDS = re.compile(r"development machine|this session|the issue\b|filed by", re.I)


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def prose(cell):
    """A markdown cell's text without code blocks, inline code and link targets (those are code, not claims)."""
    text = "".join(cell["source"])
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def typed_figures(text):
    """The measured figures typed into a piece of prose: (kind, the words around it)."""
    found = []
    for kind, pattern in FIGURES:
        for m in pattern.finditer(text):
            found.append((kind, " ".join(text[max(0, m.start() - 30):m.end() + 10].split())))
    return found


@pytest.mark.parametrize("text, kind", [
    ("the book's pipeline delivers about 3,300 images/s", "a speed"),
    ("it trains at 16,289 examples/sec", "a speed"),
    ("10 epochs take 39 s end to end", "a time"),
    ("about 50 minutes an epoch", "a time"),
    ("so roughly 5 to 6 times faster", "a speed-up"),
    ("about 5 times the book's examples/sec", "a speed-up"),
    ("about 2.9× as fast", "a speed-up"),
    ("it reached about 0.935 test accuracy", "an accuracy"),
    ("test accuracy of 0.57, 0.71", "an accuracy"),
    ("to reach about 90% test accuracy", "an accuracy"),
    ("Measured on one H100", "a GPU's name"),
])
def test_the_scan_finds_a_typed_figure(text, kind):
    assert kind in {k for k, _ in typed_figures(text)}, text


@pytest.mark.parametrize("text", [
    "a 3×3 convolution and two 1×1 convolutions on a 224×224 image",
    "1,992,166 parameters, 384×5×5 to 10×5×5 in one step",
    "chance is 1/10 = 0.1 for ten classes",
    "3 seeds per configuration, 10 epochs, batch size 128",
    "the output side is floor((n + 2p - k) / s) + 1",
    "the window starts at 0, s, 2s, … with k = 11, s = 4, p = 0",
    "the FC head has 29× NiN's parameters; MACs grow 4× when the side doubles",
])
def test_the_scan_lets_derived_facts_pass(text):
    assert typed_figures(text) == [], text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_measured_figure_is_typed_into_a_lesson(path):
    found = []
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] == "markdown":
            found += [f"cell {i}: {kind}: …{words}…" for kind, words in typed_figures(prose(cell))]
    assert not found, (f"{path.name} types measured figures into its prose; print them from the run or a record "
                       "instead:\n" + "\n".join(found))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_nbval_markers_are_tags_and_the_lesson_speaks_of_itself_only(path):
    for i, cell in enumerate(cells(path)):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert "NBVAL_" not in source, f"{path.name}, cell {i}: an nbval comment; use the cell tag instead"
        texts = [source] + ["".join(o.get("text", "")) for o in cell.get("outputs", []) or []]
        for text in texts:
            assert not PROCESS_WORDS.search(text), f"{path.name}, cell {i}: {PROCESS_WORDS.search(text).group(0)!r}"


# ---------------------------------------------------------------------------------------------
# Short: each lesson's prose within its budget (words of the markdown cells, the badge header excluded)

LESSON_WORDS = 1300
COLLECTION_WORDS = 9500


def words(path):
    return sum(len("".join(c["source"]).split()) for c in cells(path)
               if c["cell_type"] == "markdown" and "nin-header" not in c.get("metadata", {}).get("tags", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_a_lesson_stays_within_its_prose_budget(path):
    assert words(path) <= LESSON_WORDS, f"{path.name}: {words(path)} words of prose, over {LESSON_WORDS}"


def test_the_collection_stays_within_its_prose_budget():
    counts = {p.name: words(p) for p in NOTEBOOKS}
    assert sum(counts.values()) <= COLLECTION_WORDS, counts


# ---------------------------------------------------------------------------------------------
# Checks the prose relies on print their verdict as "<claim>: True"; a stored verdict that says False is a defect

VERDICT = re.compile(r":\s*(True|False)\s*$")


def stored_verdicts(path):
    """(cell, line) for every printed line of a committed lesson that ends in ': True' or ': False'."""
    found = []
    for i, cell in enumerate(cells(path)):
        for output in cell.get("outputs", []) or []:
            text = "".join(output.get("text", "")) if output.get("output_type") == "stream" else \
                "".join(output.get("data", {}).get("text/plain", ""))
            found += [(i, line) for line in text.splitlines() if VERDICT.search(line)]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_stored_verdict_is_the_one_the_prose_states(path):
    false = [f"cell {i}: {line}" for i, line in stored_verdicts(path) if line.rstrip().endswith("False")]
    assert not false, f"{path.name} prints a check that failed:\n" + "\n".join(false)


def test_the_dead_class_bound_of_lesson_05_holds_in_the_stored_run():
    """Lesson 05's Answer 1: the test images of classes never predicted cannot be right, printed from counts."""
    lines = [line for _, line in stored_verdicts(ROOT / "notebooks" / "05_training.ipynb") if "at most" in line]
    assert lines and all(line.rstrip().endswith("True") for line in lines), lines
