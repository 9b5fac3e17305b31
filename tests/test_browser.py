"""Every lesson in a real browser: JupyterLab + headless Chromium (Playwright), NIN_FAST=1.

Run with ``pytest -m browser tests/test_browser.py``. Needs Debian's Chromium at /usr/bin/chromium
(``apt-get install chromium``); without it the tests are skipped locally and fail in CI (``CI`` set).
The server serves copies of the notebooks from a temporary folder, so nothing in notebooks/ changes.
Screenshots go to screenshots/ (ignored by git).
"""
import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from browser_helpers import (CHROMIUM, ROOT, LabServer, NotebookPage, copy_notebooks, launch_browser,
                             stored_widget_cells)

pytestmark = pytest.mark.browser

LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RUN_TIMEOUT_S = int(os.environ.get("NIN_BROWSER_TIMEOUT", "600"))
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


# ----------------------------------------------------------------------------- fixtures

def _require_browser():
    reasons = []
    if not Path(CHROMIUM).exists():
        reasons.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reasons.append("the playwright package is missing (pip install playwright)")
    if reasons:
        message = "browser test needs " + " and ".join(reasons)
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must install it")
        pytest.skip(message)


def _notebook(cells):
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC})


# Stand-ins for the lesson panels, so the harness and the lesson checks are proven on their own.
HARNESS_SHAPE_PANEL = """\
import html
import ipywidgets as W
from IPython.display import HTML, display
from nin_lib import models, shapes
net = models.nin()
def view(n):
    try:
        shapes.check_input_size(net, n)
        return HTML(f'<p>a {n}×{n} input works</p>')
    except ValueError as error:
        return HTML(f'<p>Not possible: {html.escape(str(error))}</p>')
size = W.IntSlider(value=224, min=1, max=256, description='input size (px)')
display(size)
handle = display(view(size.value), display_id=True)
size.observe(lambda change: handle.update(view(change['new'])), names='value')"""

HARNESS_TRAIN_PANEL = """\
import io, threading, time
import ipywidgets as W
from matplotlib.figure import Figure
lr = W.FloatText(value=0.1, description='learning rate')
epochs = W.IntSlider(value=2, min=1, max=50, description='epochs')
train, stop = W.Button(description='Train'), W.Button(description='Stop')
progress = W.IntProgress(value=0, max=1, description='progress')
status, curves = W.HTML('ready'), W.Image(format='png', width=300)
stop_event = threading.Event()
def draw(losses):
    fig = Figure(figsize=(3, 2)); ax = fig.subplots(); ax.plot(losses); ax.set_title('loss')
    buffer = io.BytesIO(); fig.savefig(buffer, format='png'); return buffer.getvalue()
def run():
    losses, progress.max = [], 20 * epochs.value
    for step in range(progress.max):
        if stop_event.is_set():
            status.value = f'stopped by request at step {step}'
            return
        losses.append(lr.value / (step + 1)); progress.value = step + 1
        if step % 10 == 0:
            curves.value = draw(losses)
        time.sleep(0.05)
    status.value = 'finished'
def on_train(_):
    stop_event.clear(); status.value = f'training with lr {lr.value}'
    threading.Thread(target=run, daemon=True).start()
train.on_click(on_train)
stop.on_click(lambda _: stop_event.set())
W.VBox([lr, epochs, W.HBox([train, stop]), progress, status, curves])"""

HARNESS_PICTURE_PANEL = """\
import io
import ipywidgets as W
from IPython.display import Image, display
from matplotlib.figure import Figure
def picture(row):
    fig = Figure(figsize=(2, 2)); ax = fig.subplots(); ax.axhline(row); ax.set_ylim(0, 9); ax.set_title(f'row {row}')
    buffer = io.BytesIO(); fig.savefig(buffer, format='png'); return Image(buffer.getvalue())
# names of its own: the other panels' callbacks look up theirs (``handle``) in the same namespace
picture_row = W.IntSlider(value=0, min=0, max=9, description='picture row')
ignored = W.IntSlider(value=0, min=0, max=9, description='ignored')
display(W.HBox([picture_row, ignored]))
picture_handle = display(picture(picture_row.value), display_id=True)
picture_row.observe(lambda change: picture_handle.update(picture(change['new'])), names='value')"""


def write_harness_notebooks(folder):
    """Two small notebooks that prove the harness: one clean (with a widget panel), one broken on purpose."""
    folder.mkdir(parents=True, exist_ok=True)
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    clean = _notebook([
        md("# 98 · Harness (clean)"),
        code(HARNESS_SHAPE_PANEL),
        code(HARNESS_TRAIN_PANEL),
        code(HARNESS_PICTURE_PANEL),
        code("import warnings\nwarnings.warn('a warning is not an error')\nprint('stdout is fine')"),
        code("import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]); plt.title('a figure'); plt.show()"),
    ])
    broken = _notebook([
        md("# 99 · Harness (broken on purpose)"),
        code("from IPython.display import display\n"
             "display({'application/vnd.jupyter.widget-view+json': "
             "{'model_id': 'no-such-model', 'version_major': 2, 'version_minor': 0}}, raw=True)"),
        code("print(1)"),
        code("raise ValueError('broken on purpose')"),
        code("print('never runs')"),
    ])
    nbformat.write(clean, folder / "98_harness_clean.ipynb")
    nbformat.write(broken, folder / "99_harness_broken.ipynb")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving copies of notebooks/ and the harness notebooks; always shut down."""
    _require_browser()
    root = tmp_path_factory.mktemp("lab") / "root"
    copy_notebooks(ROOT / "notebooks", root / "notebooks")
    write_harness_notebooks(root / "harness")
    env = {"NIN_FAST": "1"}
    if "NIN_DATA_DIR" in os.environ:
        env["NIN_DATA_DIR"] = os.environ["NIN_DATA_DIR"]
    started = time.monotonic()
    server = LabServer(root, env=env)
    print(f"\njupyter lab answered after {time.monotonic() - started:.1f} s")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_notebook(lab, browser):
    """open_notebook('notebooks/NAME.ipynb') -> NotebookPage; screenshot and kernel shutdown afterwards."""
    contexts, pages = [], []

    def _open(relative):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = NotebookPage(context.new_page(), lab, relative)
        pages.append(page)
        return page

    try:
        yield _open
    finally:
        for page in pages:
            try:
                page.screenshot()
            except Exception as error:  # a screenshot must not hide the test's own failure
                print(f"no screenshot of {page.name}: {error}")
        for context in contexts:
            context.close()
        lab.shutdown_kernels()


def run_and_time(nb, label):
    started = time.monotonic()
    nb.run_all(RUN_TIMEOUT_S)
    print(f"\n{label}: ran all cells in {time.monotonic() - started:.1f} s")


def assert_clean(nb, stored=None):
    """No error output, every code cell ran, every widget rendered (where the saved notebook has one)."""
    assert nb.error_outputs() == [], f"{nb.name}: cells show errors"
    assert nb.unexecuted_cells() == [], f"{nb.name}: code cells did not run (run-all stops at an error)"
    assert nb.widget_problems() == [], f"{nb.name}: widgets did not render"
    if stored is not None:
        missing = sorted(set(stored_widget_cells(stored)) - set(nb.widget_cells()))
        assert missing == [], f"{nb.name}: code cells {missing} show no widget in the browser"


# ----------------------------------------------------------------------------- the harness itself

def test_harness_runs_clean_notebook_and_drives_panels(open_notebook):
    nb = open_notebook("harness/98_harness_clean.ipynb")
    run_and_time(nb, "harness")
    assert_clean(nb)
    assert nb.widget_cells() == [0, 1, 2]
    check_lesson_03_input_too_small(nb)
    check_lesson_05_train_and_stop(nb)
    assert re.search(r"stopped by request at step [1-9]", nb.panel_with_button("Train").inner_text())
    check_picture_follows(nb, "picture row", 3)
    with pytest.raises(AssertionError, match="the picture did not change"):  # a control the picture ignores
        check_picture_follows(nb, "ignored", 3, timeout_s=5)


def test_harness_sees_errors_and_broken_widgets(open_notebook):
    nb = open_notebook("harness/99_harness_broken.ipynb")
    nb.run_all(RUN_TIMEOUT_S)
    errors = nb.error_outputs()
    assert len(errors) == 1 and "broken on purpose" in errors[0]
    assert nb.unexecuted_cells() == [3]
    problems = nb.widget_problems()
    assert len(problems) == 1 and "Error displaying widget" in problems[0]


# ----------------------------------------------------------------------------- the lessons

INPUT_SIZE = re.compile(r"^\s*input (size|side)", re.I)  # not lesson 03's "image side (px)"
LEARNING_RATE = re.compile(r"^\s*(learning rate|lr)\b", re.I)


def check_lesson_03_input_too_small(nb):
    """Lesson 03: an input size too small for the net shows one clear sentence, not a traceback."""
    panel = nb.panel_with_control(INPUT_SIZE)
    assert nb.control("cell row", scope=panel).count() == 0, "the input-size panel was mistaken for another"
    outputs = panel.locator(".jp-Cell-outputArea")
    assert not re.search(r"too small", outputs.inner_text(), re.I), "the default input size is already too small"
    nb.set_value(INPUT_SIZE, 60, scope=panel)
    nb.wait_until(lambda: re.search(r"67\s*[×x]\s*67", outputs.inner_text()), 60,
                  "the panel never named the smallest input size (67×67) for a 60-px input")
    text = outputs.inner_text()
    assert re.search(r"\b60\s*[×x]\s*60\b", text), text
    assert re.search(r"layer|conv|pool", text, re.I), text
    assert "Traceback" not in text and nb.error_outputs() == []


def check_lesson_05_train_and_stop(nb):
    """Lesson 05: set lr, press Train, curves (and the prediction counts, where the panel has them) and the progress
    bar move, press Stop, the panel says it stopped."""
    panel = nb.panel_with_button("Train")
    nb.set_value(LEARNING_RATE, 0.05, scope=panel)
    nb.set_value("epochs", 50, scope=panel)  # long enough that Stop, not the end of the run, ends it
    # the panel with a "final ReLU" checkbox draws a second picture beside the curves: the predicted classes
    counts = panel.locator(".widget-checkbox", has_text=re.compile(r"final ReLU", re.I)).count() > 0
    before = nb.figure_sources(panel)
    if counts:
        assert len(before) >= 2, f"{nb.name}: the training panel shows {len(before)} picture(s), not curves and counts"
    nb.button("Train", scope=panel).click()
    # 0 < fraction < 1: a bar left full by a run during Run All does not count
    nb.wait_until(lambda: 0 < nb.progress_fraction(panel) < 1, 180, "the progress bar never moved")
    nb.wait_until(lambda: nb.figure_sources(panel)[:1] != before[:1], 120, "the curves were never drawn")
    if counts:
        nb.wait_until(lambda: nb.figure_sources(panel)[1:2] != before[1:2], 120,
                      "the prediction counts were never redrawn during the run")
    first = nb.progress_fraction(panel)
    nb.wait_until(lambda: nb.progress_fraction(panel) > first, 120, "the progress bar stopped moving")
    running_text = panel.inner_text()
    nb.button("Stop", scope=panel).click()
    nb.wait_until(lambda: re.search(r"stopped", panel.inner_text(), re.I) and panel.inner_text() != running_text,
                  120, "the panel never said it stopped")
    stopped_at = nb.progress_fraction(panel)
    assert 0 < stopped_at < 1.0, "the run finished instead of stopping"
    nb.page.wait_for_timeout(2000)
    assert nb.progress_fraction(panel) == stopped_at, "the run went on after Stop"
    assert nb.button("Train", scope=panel).is_enabled(), "Train is not available again after Stop"
    assert nb.error_outputs() == [] and "Traceback" not in panel.inner_text()


PANEL_PROBLEM = re.compile(r"Traceback|Error \(a bug\)|Not possible")


def check_picture_follows(nb, label, value, timeout_s=60):
    """Move the control ``label`` of a lesson's view to ``value``: the picture in that cell is redrawn (as many
    pictures as before, not all the same), the control shows ``value``, and nothing shows an error or a refusal."""
    panel = nb.panel_with_control(label)
    assert panel.count() == 1, f"{nb.name}: no panel with a control {label!r}"
    before = nb.figure_sources(panel)
    assert before, f"{nb.name}: the panel with {label!r} shows no picture before {label!r} moves"
    assert nb.shown_value(label, panel) != str(value), f"{nb.name}: {label!r} already shows {value!r}"
    nb.set_value(label, value, scope=panel)

    def settled():
        now = nb.figure_sources(panel)
        return (len(now) == len(before) and now != before) or PANEL_PROBLEM.search(panel.inner_text())

    nb.wait_until(settled, timeout_s, f"the picture did not change after {label!r} moved to {value!r}")
    text = panel.inner_text()
    problem = PANEL_PROBLEM.search(text)
    assert problem is None, f"{nb.name}: {label!r} = {value!r} shows {problem.group(0)!r}:\n{text[-1500:]}"
    assert nb.error_outputs() == [], f"{nb.name}: cells show errors after {label!r} moved"
    shown = nb.shown_value(label, panel)
    assert shown == str(value), f"{nb.name}: {label!r} shows {shown!r}, not {value!r}"


def check_lesson_01_one_pixel(nb):
    """Lesson 01: another pixel row, another pixel through the 1×1 conv."""
    check_picture_follows(nb, "pixel row", 5)


def check_lesson_01_conv_cost(nb):
    """Lesson 01: a 3×3 kernel instead of a 1×1 redraws the bars of parameters and MACs."""
    check_picture_follows(nb, "kernel size", 3)


def check_lesson_02_parameters(nb):
    """Lesson 02: four 1×1 convs per block redraw the parameter shares."""
    check_picture_follows(nb, "1×1 convs per block", 4)


def check_lesson_03_receptive_field(nb):
    """Lesson 03: another cell of the layer's map, another receptive field on the image."""
    check_picture_follows(nb, "cell row", 2)


def check_lesson_04_class_maps(nb):
    """Lesson 04: the test image moved left redraws its class maps."""
    check_picture_follows(nb, "shift right (px)", -3)


def check_lesson_04_adaptive_windows(nb):
    """Lesson 04: a longer input redraws the windows of adaptive pooling."""
    check_picture_follows(nb, "input length (px)", 13)


def check_lesson_06_experiment(nb):
    """Lesson 06: another head puts another recorded configuration's seeds beside the learner's runs."""
    check_picture_follows(nb, "head", "FC head (AlexNet-style)")


LESSON_CHECKS = {"01": (check_lesson_01_one_pixel, check_lesson_01_conv_cost),
                 "02": (check_lesson_02_parameters,),
                 "03": (check_lesson_03_input_too_small, check_lesson_03_receptive_field),
                 "04": (check_lesson_04_class_maps, check_lesson_04_adaptive_windows),
                 "05": (check_lesson_05_train_and_stop,),
                 "06": (check_lesson_06_experiment,)}


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_jupyterlab(open_notebook, path):
    nb = open_notebook(f"notebooks/{path.name}")
    run_and_time(nb, path.stem)
    assert_clean(nb, stored=path)
    for check in LESSON_CHECKS.get(path.name[:2], ()):
        started = time.monotonic()
        check(nb)
        print(f"{path.stem}: {check.__name__} took {time.monotonic() - started:.1f} s")

