"""Lesson 05's training panel, headless: press the buttons with .click(), wait for the thread, check."""
import subprocess
import sys
import time

import pytest

W = pytest.importorskip("ipywidgets")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from nin_lib import checks, data, presets, train, viz, widgets  # noqa: E402


def tiny_panel(fmnist, **kwargs):
    panel = widgets.TrainingPanel(fmnist, preset="quick", device="cpu", subset=1000, test_subset=200, **kwargs)
    c = panel.controls
    c["num_epochs"].value = 1
    c["batch_size"].value = 100
    return panel


def test_the_lr_slider_really_shows_0_1(fmnist):
    panel = widgets.TrainingPanel(fmnist, preset="d2l", device="cpu")
    lr = panel.controls["lr"]
    assert isinstance(lr, W.FloatLogSlider)
    assert lr.value == pytest.approx(0.1) and lr.min <= -1 <= lr.max and lr.readout_format == ".3g"
    assert format(lr.value, lr.readout_format) == "0.1"
    assert panel.controls["resize"].value == 224 and panel.controls["batch_size"].value == 128
    panel.controls["preset"].value = "quick"  # choosing a preset loads its values
    assert panel.controls["resize"].value == 28 and panel.controls["batch_norm"].value
    assert panel.settings().name == "quick" and panel.settings().resize is None
    assert panel.controls["subset"].options[-1] == (f"all {len(fmnist.train_labels):,}", None)  # from the data


def test_the_panel_shows_its_controls_in_rows_then_train_stop_status_and_curves(fmnist):
    panel = widgets.TrainingPanel(fmnist, preset="quick", device="cpu")
    rows = panel.box.children
    assert [[c.description for c in row.children] for row in rows[:4]] == [
        ["preset", "device", "training images"], ["learning rate", "epochs"],
        ["batch size", "image size (px)", "dropout"], ["BatchNorm", "final ReLU", "momentum"]]
    assert list(rows[4].children) == [panel.train_button, panel.stop_button, panel.progress]
    assert len(rows) == 7 and rows[5] is panel.status and panel.result() == []  # no output below the box
    assert list(rows[6].children) == [panel.curves, panel.count_bars]  # the curves, the counts beside them
    panel.redraw()  # before a run there is nothing to draw
    assert bytes(panel.curves.value) == bytes(panel.count_bars.value) == b""


def test_the_panel_final_relu_checkbox_sets_the_preset_and_a_preset_sets_it(fmnist):
    panel = widgets.TrainingPanel(fmnist, preset="quick", device="cpu")
    box = panel.controls["final_relu"]
    assert isinstance(box, W.Checkbox) and box.value is False and panel.settings().final_relu is False
    relus = lambda: sum(isinstance(m, nn.ReLU) for m in panel.settings().build_net("meta").modules())  # noqa: E731
    without = relus()
    box.value = True
    assert panel.settings().final_relu is True and relus() == without + 1  # the ReLU on the class scores
    panel.controls["preset"].value = "d2l"  # the chapter's recipe has it
    assert box.value is True and panel.settings().final_relu is True
    panel.controls["preset"].value = "quick"
    assert box.value is False


def test_the_panel_counts_picture_marks_and_names_a_class_never_predicted():
    counts = torch.tensor([50, 0, 30, 20, 0, 40, 10, 25, 15, 10])
    fig = viz.prediction_counts(counts, data.CLASS_NAMES, title="run 1")
    ax = fig.axes[0]
    assert " ".join(ax.get_title().split()) == (
        "run 1: 2 of 10 classes never predicted (trouser, coat), on 200 test images")
    assert [t.get_text().strip() for t in ax.texts] == ["0", "0"]  # a red 0 on each empty bar
    red = [t.get_text() for t in ax.get_yticklabels() if t.get_color() == "#b00020"]
    assert red == ["trouser", "coat"]
    plt.close(fig)
    fig = viz.prediction_counts(counts + 1)
    assert "every class predicted, on 210 test images" in " ".join(fig.axes[0].get_title().split())
    assert len(fig.axes[0].texts) == 0
    plt.close(fig)
    with pytest.raises(checks.Refusal, match="one count per class"):
        viz.prediction_counts(torch.zeros(10, 10))


def test_the_panel_counts_the_predictions_of_the_first_test_images_while_it_trains(fmnist):
    panel = tiny_panel(fmnist)
    first = []
    panel.on_batch = lambda run: first.append(bytes(panel.count_bars.value)) if run.global_step == 1 else None
    assert panel.train() is True
    assert panel.wait(timeout=300) is not None and panel.error is None
    start, end = first[0], bytes(panel.count_bars.value)
    assert start.startswith(b"\x89PNG") and end.startswith(b"\x89PNG") and start != end  # drawn again at the end
    (X, y), = panel.sample  # the test subset's 200 images (fewer than 250)
    assert X.shape == (200, 1, 28, 28) and torch.equal(y, panel.run.test_iter.labels[:200])
    assert panel.counts.shape == (10,) and int(panel.counts.sum()) == 200
    _, y_hat = train.predict(panel.net, panel.sample)  # the trained net's predictions, in eval mode
    assert torch.equal(panel.counts, torch.bincount(y_hat, minlength=10))
    panel.net.train()
    panel.redraw()  # one interaction: both pictures again, the net left as it was
    assert panel.net.training and int(panel.counts.sum()) == 200


def test_the_panel_counts_fewer_test_images_when_they_are_larger(fmnist):
    panel = tiny_panel(fmnist)
    panel.controls["resize"].value = 32
    assert panel.train() is True and panel.wait(timeout=300) is not None and panel.error is None
    assert panel.sample[0][0].shape == (50, 1, 32, 32) and int(panel.counts.sum()) == 50


def test_the_panel_labels_a_past_run_by_the_settings_that_differed():
    quick = presets.get_preset("quick", subset=1000)
    changed = quick.with_overrides(lr=0.05, final_relu=True)
    assert widgets.run_label(2, changed, quick) == "run 2: lr 0.05, final ReLU on"
    assert widgets.run_label(1, quick, quick.with_overrides(lr=0.12000001)) == "run 1: same settings"
    assert widgets.run_label(3, presets.get_preset("d2l"), quick) == (
        "run 3: preset d2l, images all, lr 0.1, epochs 10, batch size 128, image size 224, dropout 0.5, "
        "BatchNorm off, momentum 0, final ReLU on")


def test_the_panel_draws_the_previous_run_on_the_curves_labelled_by_what_differed(fmnist):
    panel = tiny_panel(fmnist)
    assert panel.train() is True
    first = panel.wait(timeout=300)
    legend = lambda: [t.get_text() for t in panel.figure().axes[0].get_legend().get_texts()]  # noqa: E731
    assert panel.live.past == [] and not any(text.startswith("run") for text in legend())
    panel.controls["lr"].value = 0.05
    assert panel.train() is True and panel.wait(timeout=300) is not None
    [(label, curves)] = panel.live.past
    assert label == "run 1: lr 0.12" and label in legend()
    assert curves["test acc"] == ([1.0], [first.final_test_acc]) and len(panel.past) == 2
    with_past = panel.live._repr_png_()
    panel.live.past = []
    assert panel.live._repr_png_() != with_past  # the first run is in the picture


def test_train_click_trains_in_the_background(fmnist):
    panel = tiny_panel(fmnist)
    panel.train_button.click()
    assert panel.thread is not None
    history = panel.wait(timeout=300)
    assert not panel.running and panel.error is None
    assert history is not None and len(history) == 1 and not history.stopped
    assert 0 <= history.final_test_acc <= 1
    assert panel.net is not None and panel.history is history
    assert panel.progress.value == panel.progress.max == 10
    assert len(panel.curves.value) > 1000  # a PNG of the curves
    points = panel.live.points
    assert points["train loss (batches)"][0] == [b / 10 for b in range(1, 11)]  # ten batch points an epoch
    assert points["test acc"] == ([1.0], [history.final_test_acc])
    assert "1 epoch(s)" in panel.status.value
    assert not panel.train_button.disabled and panel.stop_button.disabled


def test_stop_click_ends_the_run_and_keeps_net_and_history(fmnist):
    panel = tiny_panel(fmnist)
    panel.controls["subset"].value = 5000  # (a new number of images refills the preset's epochs)
    panel.controls["num_epochs"].value = 40
    panel.train_button.click()
    deadline = time.time() + 120
    while panel.progress.value < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert panel.running and panel.train_button.disabled and not panel.stop_button.disabled
    panel.stop_button.click()
    history = panel.wait(timeout=120)
    assert not panel.running
    assert history.stopped and history.reason.startswith("stopped by request in epoch")
    assert len(history) >= 1 and history.completed_epochs < 40
    assert panel.net is not None
    assert "stopped by request" in panel.status.value


@pytest.mark.parametrize("preset, control, value, says", [
    ("quick", "batch_size", 0, "batch_size 0 is not allowed"),
    ("d2l", "resize", 32, "smallest input it accepts is 67×67"),
    ("quick", "device", "cuda" if not __import__("torch").cuda.is_available() else "mps", "was requested but"),
])
def test_invalid_settings_are_a_message_not_a_crash(fmnist, preset, control, value, says):
    panel = widgets.TrainingPanel(fmnist, preset=preset, device="cpu")
    panel.controls[control].value = value
    panel.train_button.click()
    assert panel.thread is None and panel.history is None
    assert "Not possible" in panel.status.value and says in panel.status.value
    assert "a bug" not in panel.status.value and says in panel.error


# what a panel shows for each kind of error: the learner's value (a Refusal) or a bug (anything else, ValueError too)
ERRORS = [(checks.refuse("batch_size 3 is not allowed here"), "Not possible:", "batch_size 3 is not allowed here."),
          (ValueError("a plain ValueError inside the library"), "Error (a bug):",
           "ValueError: a plain ValueError inside the library"),
          (RuntimeError("shape mismatch"), "Error (a bug):", "RuntimeError: shape mismatch")]


def _raise(error):
    def raiser(*args, **kwargs):
        raise error
    return raiser


@pytest.mark.parametrize("error, heading, text", ERRORS)
def test_an_error_before_the_run_starts_is_shown_for_what_it_is(fmnist, monkeypatch, error, heading, text):
    monkeypatch.setattr(presets, "check_memory", _raise(error))
    panel = tiny_panel(fmnist)
    assert panel.train() is False and panel.thread is None and panel.history is None
    assert heading in panel.status.value and text in panel.status.value and panel.error == text
    assert not panel.train_button.disabled


@pytest.mark.parametrize("error, heading, text", ERRORS)
def test_an_error_inside_the_run_is_shown_for_what_it_is(fmnist, monkeypatch, error, heading, text):
    monkeypatch.setattr(presets, "build_run", _raise(error))
    panel = tiny_panel(fmnist)
    assert panel.train() is True
    assert panel.wait(timeout=60) is None and not panel.running  # the thread ended; nothing was raised out of it
    assert heading in panel.status.value and text in panel.status.value and panel.error == text
    assert not panel.train_button.disabled and panel.stop_button.disabled  # ready for another run


def test_importing_the_library_does_not_import_ipywidgets():
    code = ("import sys, nin_lib.train, nin_lib.presets, nin_lib.viz, nin_lib.data, nin_lib.models; "
            "print('ipywidgets' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False"


def test_the_smallest_choice_of_images_still_trains_a_net_that_learned(fmnist):
    panel = widgets.TrainingPanel(fmnist, preset="quick", device="cpu", subset=1000)
    epochs, batch = panel.controls["num_epochs"].value, panel.controls["batch_size"].value
    assert epochs * -(-1000 // batch) >= widgets.MIN_STEPS  # the epochs go up so that the run has enough steps
    assert panel.settings().test_subset == 1000  # each epoch's test pass as large as the training set
    assert panel.train() is True
    history = panel.wait(timeout=600)
    assert not history.stopped and history.final_test_acc >= 0.6, history.summary()


def test_a_run_far_too_slow_for_this_cpu_is_refused_with_the_estimate(fmnist):
    panel = widgets.TrainingPanel(fmnist, preset="d2l", device="cpu", subset=10000)
    assert panel.train() is False and panel.thread is None
    assert "the d2l preset's net needs about 4.51 billion floating-point operations" in panel.error
    assert "choose fewer images or epochs, the quick preset, or a GPU" in panel.error


def test_after_a_stop_the_summary_says_what_was_trained(fmnist):
    panel = tiny_panel(fmnist)
    panel.on_batch = lambda run: panel.stop() if run.global_step == 3 else None
    assert panel.train() is True
    history = panel.wait(timeout=300)
    assert history.reason.startswith("stopped by request in epoch 1, batch 3/10")
    assert "3 of 10 batches of epoch 1" in panel.status.value
    assert panel.live.points["train loss"][0] == [0.3]  # the partial epoch's point sits where it stopped
