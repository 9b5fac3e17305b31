"""The trainer (lesson 05): fit learns, resumes exactly, stops safely on NaN, Stop and Ctrl-C; the CLI."""
import json
import math
import threading
from pathlib import Path

import pytest
import torch

from nin_lib import presets, train

# a tiny CPU run: 28-px NiN at a tenth of the width, 256 training and 128 test images, 4 batches an epoch;
# dropout and flips on, so that resuming must restore the random-number states
TINY = dict(width=0.1, batch_size=64, subset=256, test_subset=128, num_epochs=2, device="cpu",
            eval_batch_size=128, dropout=0.5, flip=True)


def tiny_run(fmnist, **overrides):
    """The quick preset shrunk to seconds (dropout, flips, momentum and one-cycle all on)."""
    return presets.build_run("quick", data=fmnist, **{**TINY, **overrides})


def weights(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Raise(train.Callback):
    """Raise KeyboardInterrupt after a given batch of a given epoch (a kernel interrupt mid-epoch)."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, step):
        if (step.epoch, step.batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


class StopAt(train.Callback):
    """Set a stop event after a given batch, or after a given epoch ends."""

    def __init__(self, event, epoch, batch=None):
        self.event, self.epoch, self.batch = event, epoch, batch

    def on_batch_end(self, step):
        if self.batch is not None and (step.epoch, step.batch) == (self.epoch, self.batch):
            self.event.set()

    def on_epoch_end(self, record, history):
        if self.batch is None and record["epoch"] == self.epoch:
            self.event.set()


def numbers(history):
    keys = ("epoch", "loss", "train_acc", "test_acc", "images", "lr")
    return [{k: e[k] for k in keys} for e in history.epochs]


# ---------------------------------------------------------------------------------------------

def test_fit_learns_above_chance(fmnist):
    run = presets.build_run("quick", data=fmnist, device="cpu", batch_size=32, subset=1024,
                            test_subset=500, num_epochs=2, lr=0.1)
    history = run.fit(progress=False)
    assert len(history) == 2 and not history.stopped and history.reason is None
    assert history.loss[1] < history.loss[0]
    assert history.final_test_acc > 0.5  # chance is 0.1
    e = history.last
    assert e["images"] == 1024 and e["seconds"] >= e["train_seconds"] > 0 and e["images_per_s"] > 0
    assert 0 <= e["train_acc"] <= 1 and e["lr"] < 0.1  # one-cycle ends far below its peak
    assert math.isclose(run.evaluate(), history.final_test_acc)


def test_evaluate_returns_accuracy_and_loss(fmnist):
    run = tiny_run(fmnist)
    acc = train.evaluate(run.net, run.test_iter)
    acc2, loss = train.evaluate(run.net, run.test_iter, "cpu", return_loss=True)
    assert isinstance(acc, float) and 0 <= acc <= 1 and acc == acc2
    assert loss > 0 and math.isfinite(loss)
    y, y_hat = train.predict(run.net, run.test_iter)
    assert y.shape == y_hat.shape == (128,)
    counts = train.confusion_matrix(y, y_hat)
    assert counts.shape == (10, 10) and counts.sum() == 128
    assert counts.trace().item() / 128 == pytest.approx(acc)


def test_resume_gives_the_same_numbers_and_weights(fmnist, tmp_path):
    straight = tiny_run(fmnist)
    h_straight = straight.fit(progress=False)

    ckpt = tmp_path / "run.pt"
    first = tiny_run(fmnist)
    stop = threading.Event()
    h_first = first.fit(progress=False, checkpoint=ckpt, stop=stop, callbacks=[StopAt(stop, epoch=1)])
    assert h_first.stopped and len(h_first) == 1 and "stopped" in h_first.reason
    assert ckpt.exists() and not list(tmp_path.glob("*.tmp"))
    assert train.load_checkpoint(ckpt)["epoch"] == 1

    resumed = tiny_run(fmnist, seed=0)
    h_resumed = resumed.fit(progress=False, checkpoint=ckpt, resume=True)
    assert len(h_resumed) == 2 and not h_resumed.stopped
    assert numbers(h_resumed) == numbers(h_straight)
    assert same_weights(weights(resumed.net), weights(straight.net))


def test_interrupt_keeps_model_history_and_an_exact_checkpoint(fmnist, tmp_path):
    ckpt = tmp_path / "run.pt"
    run = tiny_run(fmnist)
    history = run.fit(progress=False, checkpoint=ckpt, callbacks=[Raise(epoch=2, batch=2)])
    assert history.stopped and "interrupted" in history.reason and "epoch 2" in history.reason
    assert history.completed_epochs == 1
    assert history.last["partial"] and history.last["images"] == 128 and history.last["test_acc"] is None
    state = train.load_checkpoint(ckpt)
    assert state["epoch"] == 1 and len(state["history"]["epochs"]) == 1
    # the model keeps what it learnt after the checkpoint (two more batches)
    assert not same_weights(weights(run.net), state["model"])
    # and resuming from the checkpoint equals an uninterrupted run
    straight = tiny_run(fmnist)
    h_straight = straight.fit(progress=False)
    resumed = tiny_run(fmnist)
    h_resumed = resumed.fit(progress=False, checkpoint=ckpt, resume=True)
    assert numbers(h_resumed) == numbers(h_straight)
    assert same_weights(weights(resumed.net), weights(straight.net))


def test_stop_event_mid_epoch_keeps_the_net_and_history(fmnist):
    run = tiny_run(fmnist)
    stop = threading.Event()
    history = run.fit(progress=False, stop=stop, callbacks=[StopAt(stop, epoch=1, batch=2)])
    assert history.stopped and history.reason.startswith("stopped by request in epoch 1, batch 2/4")
    assert len(history) == 1 and history.last["partial"] and history.last["images"] == 128


def test_nan_loss_stops_and_restores_the_last_good_weights(fmnist, capsys):
    run = tiny_run(fmnist, lr=1e12, batch_norm=False, schedule="constant", label_smoothing=0.0)
    before = weights(run.net)
    history = run.fit(progress=False)
    assert history.stopped
    assert "the training loss became" in history.reason and "learning rate is probably too high" in history.reason
    assert "the starting weights were restored" in history.reason
    assert history.reason in capsys.readouterr().out
    assert all(torch.isfinite(v).all() for v in weights(run.net).values() if v.is_floating_point())
    assert same_weights(weights(run.net), before)
    assert len(history) == 0


def test_nan_in_second_epoch_keeps_the_first_epoch(fmnist):
    run = tiny_run(fmnist, schedule="constant", batch_norm=False, lr=0.05, momentum=0.0, nesterov=False)

    class Explode(train.Callback):
        def on_epoch_end(self, record, history):
            run.optimizer.param_groups[0]["lr"] = 1e12
            self.after_first = weights(run.net)

    explode = Explode()
    history = run.fit(progress=False, callbacks=[explode])
    assert history.stopped and "in epoch 2" in history.reason and "the weights after epoch 1 were restored" in history.reason
    assert len(history) == 1 and math.isfinite(history.last["loss"])
    assert same_weights(weights(run.net), explode.after_first)


def test_max_steps_records_a_partial_epoch(fmnist):
    run = tiny_run(fmnist)
    history = run.fit(progress=False, max_steps=3, test_iter=None)
    assert not history.stopped and "max_steps=3" in history.reason
    assert history.last["images"] == 192 and history.last["partial"] and history.last["test_acc"] is None


@pytest.mark.parametrize("kwargs, says", [
    (dict(num_epochs=0, lr=0.1), "num_epochs 0 is not allowed"),
    (dict(num_epochs=1), "either lr"),
    (dict(num_epochs=1, lr=float("nan")), "learning rate nan is not allowed"),
    (dict(num_epochs=1, lr=-1), "learning rate -1 is not allowed"),
    (dict(num_epochs=1, lr=0.1, resume=True), "resume=True needs checkpoint"),
    (dict(num_epochs=1, lr=0.1, device="tpu"), "device 'tpu' is not known"),
])
def test_fit_rejects_bad_arguments(fmnist, kwargs, says):
    run = tiny_run(fmnist)
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        train.fit(run.net, run.train_iter, run.test_iter, progress=False, **kwargs)


def test_a_schedule_shorter_than_the_run_is_refused(fmnist, tmp_path):
    ckpt = tmp_path / "run.pt"
    tiny_run(fmnist, num_epochs=1).fit(progress=False, checkpoint=ckpt)
    longer = tiny_run(fmnist, num_epochs=1)
    with pytest.raises(ValueError, match=r"covers 4 batches but 2 epochs of 4 batches need 8; resume with .*\(1\)"):
        longer.fit(progress=False, checkpoint=ckpt, resume=True, num_epochs=2)


def test_a_bad_checkpoint_is_one_sentence(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        train.load_checkpoint(bad)
    with pytest.raises(ValueError, match="does not exist"):
        train.load_checkpoint(tmp_path / "missing.pt")


def test_history_round_trips_through_json(tmp_path):
    h = train.History([{"epoch": 1, "loss": 0.5, "train_acc": 0.8, "test_acc": 0.7, "seconds": 1.0,
                        "train_seconds": 0.9, "images_per_s": 100.0, "images": 90, "lr": 0.1}],
                      stopped=True, reason="stopped by request", meta={"preset": {"name": "quick"}})
    path = h.save_json(tmp_path / "h.json")
    back = train.History.load_json(path)
    assert back.to_dict() == h.to_dict() and back.test_acc == [0.7] and back.stopped
    assert "1 epoch(s)" in h.summary() and "stopped by request" in h.summary()
    assert train.format_epoch(h[0], 10).startswith("epoch 1/10: loss 0.500, train acc 0.800, test acc 0.700")


# ---------------------------------------------------------------------------------------------
# The command line

from conftest import run_cli as cli  # noqa: E402


def test_cli_train_writes_history_and_curves(tmp_path):
    out = tmp_path / "out"
    r = cli("train", "--preset", "quick", "--epochs", "1", "--subset", "128", "--test-subset", "128",
            "--batch-size", "64", "--device", "cpu", "--out", str(out), "--no-progress", "--checkpoint", str(tmp_path / "c.pt"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("training preset 'quick' on cpu")
    assert any(line.startswith("epoch 1/1: loss ") for line in lines)
    assert any(line.startswith("summary: 1 epoch(s)") for line in lines)
    history = json.loads((out / "history.json").read_text())
    assert len(history["epochs"]) == 1 and history["meta"]["preset"]["name"] == "quick"
    assert (out / "curves.png").stat().st_size > 1000 and (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("args, says", [
    (("train", "--preset", "fast"), "preset 'fast' is not known; choose one of d2l, improved, quick"),
    (("train", "--lr", "0"), "learning rate 0.0 is not allowed"),
    (("train", "--lr", "nan"), "learning rate nan is not allowed"),
    (("train", "--batch-size", "0"), "batch_size 0 is not allowed"),
    (("train", "--batch-size", "1.5"), "'1.5' is not a whole number"),
    (("train", "--epochs", "-2"), "num_epochs -2 is not allowed"),
    (("train", "--device", "tpu"), "invalid choice: 'tpu'"),
    (("train", "--preset", "d2l", "--resize", "64"), "the smallest input it accepts is 67×67"),
    (("train", "--resume"), "--resume needs --checkpoint"),
    (("bench", "pipeline", "--steps", "0"), "0 is not allowed"),
    (("bench", "--steps", "x"), "'x' is not a whole number"),
    (("bench", "walk"), "invalid choice: 'walk'"),
])
def test_cli_bad_arguments_exit_2_with_one_sentence(args, says):
    r = cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert says in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_bench_pipeline_runs_in_ci_size(tmp_path):
    out = tmp_path / "bench.json"
    r = cli("bench", "--device", "cpu", "--steps", "2", "--warmup", "1", "--batch-size", "8",  # mode: pipeline
            "--resize", "67", "--workers", "0", "--json", str(out))
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    names = [x["name"] for x in result["results"]]
    assert names == ["d2l-style", "fit", "nin_lib.d2l"] and all(x["images"] == 16 for x in result["results"])
    assert result["results"][1]["ratio"] > 0 and "fit / d2l-style = " in r.stdout
    book = result["results"][2]
    assert book["ratio"] > 0 and "nin_lib.d2l / d2l-style = " in r.stdout
    assert any(line.endswith("examples/sec on cpu") for line in book["lines"])  # the book's closing line
    assert result["machine"]["torch"] == torch.__version__
