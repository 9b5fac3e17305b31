"""The trainer (lesson 05): fit learns, its callbacks run in a fixed order at their hooks, it resumes exactly,
stops safely on Stop, a NaN loss and max steps, and refuses bad arguments in one sentence. (Interrupts, out of
memory and a full disk are the faults of test_reliability.)"""
import math
import threading

import pytest
import torch
from torch import nn

from conftest import finite, numbers, quiet, same_weights, tiny_run, weights
from nin_lib import checks, data, models, train


class StopAt(train.Callback):
    """Set a stop event after a given batch, or after a given epoch ends."""

    def __init__(self, event, epoch, batch=None):
        self.event, self.epoch, self.batch = event, epoch, batch

    def on_batch_end(self, run):
        if self.batch is not None and (run.epoch + 1, run.batch) == (self.epoch, self.batch):
            self.event.set()

    def on_epoch_end(self, run):
        if self.batch is None and run.record["epoch"] == self.epoch:
            self.event.set()


def test_fit_learns_above_chance(fmnist):
    run = tiny_run(fmnist, width=0.25, batch_size=32, subset=1024, test_subset=500, dropout=0.0, flip=False,
                   lr=0.1, eval_batch_size=500)
    history = run.fit(quiet())
    assert len(history) == 2 and not history.stopped and history.reason is None
    assert history.loss[1] < history.loss[0]
    assert history.final_test_acc > 0.5  # chance is 0.1
    e = history.last
    assert e["images"] == 1024 and e["seconds"] >= e["train_seconds"] > 0 and e["images_per_s"] > 0
    assert 0 <= e["train_acc"] <= 1 and e["lr"] < 0.1  # one-cycle ends far below its peak
    assert math.isclose(run.evaluate(), history.final_test_acc)
    assert history.meta["preset"]["name"] == "quick" and history.meta["device"].startswith("cpu")


def test_evaluate_predict_and_the_confusion_matrix_agree(fmnist):
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


class Log(train.Callback):
    """Write down every event, with the batch it came at."""

    def __init__(self, order=0):
        self.order, self.events = order, []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return lambda run, *a: self.events.append((name, run.epoch, run.batch))
        return super().__getattribute__(name)


def test_callbacks_run_at_their_hooks_in_a_fixed_order(fmnist):
    late, early = Log(order=5), Log(order=-5)
    order = []

    class Mark(train.Callback):
        def __init__(self, name, order):
            self.name, self.order = name, order

        def on_train_begin(self, run):
            order.append(self.name)

    run = tiny_run(fmnist, num_epochs=1)
    run.fit(quiet(late, Mark("b", 1), Mark("a", -1), early))
    assert order == ["a", "b"]
    assert late.events == early.events
    names = [e[0] for e in late.events]
    assert names[:2] == ["on_train_begin", "on_epoch_begin"] and names[-2:] == ["on_epoch_end", "on_train_end"]
    batch = ["on_batch_begin", "on_backward", "on_step", "on_batch_end"]
    assert names[2:-2] == batch * 4 and [e[2] for e in late.events if e[0] == "on_batch_end"] == [1, 2, 3, 4]


def test_the_standard_callbacks_are_added_unless_given():
    given = train._with_standard([train.ProgressBar(False), train.MaxSteps(2)])
    kinds = [type(cb) for cb in given]
    assert kinds.count(train.ProgressBar) == 1 and not given[0].enabled
    assert set(train.STANDARD) <= set(kinds) and train.MaxSteps in kinds


def test_mixed_precision_runs_the_forward_pass_in_bf16_on_a_cpu(fmnist):
    seen = []

    class Dtype(train.Callback):
        def on_backward(self, run):
            seen.append((run.y_hat.dtype, run.X.is_contiguous(memory_format=torch.channels_last)))

    run = tiny_run(fmnist, num_epochs=1)
    history = run.fit(quiet(train.MixedPrecision(True), train.ChannelsLast(True), train.MaxSteps(2), Dtype()))
    assert seen == [(torch.bfloat16, True)] * 2
    assert history.meta["amp"] and history.meta["channels_last"] and finite(run.net)
    seen.clear()
    run.fit(quiet(train.MixedPrecision(False), train.ChannelsLast(False), train.MaxSteps(1), Dtype()))
    assert seen[0][0] == torch.float32  # (the preset's batches come channels_last already)


def test_grad_clip_clips_the_gradient_norm_before_the_step():
    torch.manual_seed(1)
    X, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))

    def step_norm(*callbacks):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                            nn.Linear(8, 10))
        before = [p.detach().clone() for p in net.parameters()]
        train.fit(net, [(X, y)], num_epochs=1, lr=1.0, device="cpu", callbacks=quiet(*callbacks))
        return float(torch.sqrt(sum(((b - p.detach()) ** 2).sum() for b, p in zip(before, net.parameters()))))

    free = step_norm()
    assert free > 0.01
    assert step_norm(train.GradClip(1e-3)) == pytest.approx(1e-3, rel=1e-3)  # the step is lr × the clipped gradient
    assert step_norm(train.GradClip(1e6)) == pytest.approx(free, rel=1e-6)  # a norm below the limit is left alone


def test_resume_after_a_stop_gives_the_same_numbers_and_weights(fmnist, tmp_path):
    straight = tiny_run(fmnist)
    h_straight = straight.fit(quiet())

    ckpt = tmp_path / "run.pt"
    first, stop = tiny_run(fmnist), threading.Event()
    h_first = first.fit(quiet(train.Checkpoint(ckpt), train.Stop(stop), StopAt(stop, epoch=1)))
    assert h_first.stopped and len(h_first) == 1 and "stopped by request in epoch 2" in h_first.reason
    assert ckpt.exists() and not list(tmp_path.glob("*.tmp"))
    assert train.load_checkpoint(ckpt)["epoch"] == 1

    resumed = tiny_run(fmnist)
    h_resumed = resumed.fit(quiet(train.Checkpoint(ckpt, resume=True, verbose=False)))
    assert len(h_resumed) == 2 and not h_resumed.stopped
    assert numbers(h_resumed) == numbers(h_straight)
    assert same_weights(weights(resumed.net), weights(straight.net))


def test_stop_mid_epoch_keeps_the_net_and_a_partial_epoch(fmnist):
    run, stop = tiny_run(fmnist), threading.Event()
    history = run.fit(quiet(train.Stop(stop), StopAt(stop, epoch=1, batch=2)))
    assert history.stopped and history.reason.startswith("stopped by request in epoch 1, batch 2/4")
    assert len(history) == 1 and history.last["partial"] and history.last["images"] == 128


def test_nan_in_the_second_epoch_restores_the_first_epochs_weights(fmnist, capsys):
    run = tiny_run(fmnist, schedule="constant", batch_norm=False, lr=0.05, momentum=0.0, nesterov=False)

    class Explode(train.Callback):
        def on_epoch_end(self, run):
            run.optimizer.param_groups[0]["lr"] = 1e12
            self.after_first = weights(run.net)

    explode = Explode()
    history = run.fit([explode])  # the standard progress bar prints the reason
    assert history.stopped and "the training loss became" in history.reason and "in epoch 2" in history.reason
    assert "the weights after epoch 1 were restored" in history.reason
    assert history.reason in capsys.readouterr().out
    assert len(history) == 1 and math.isfinite(history.last["loss"])
    assert same_weights(weights(run.net), explode.after_first)


def test_max_steps_records_a_partial_epoch(fmnist):
    run = tiny_run(fmnist)
    history = run.fit(quiet(train.MaxSteps(3)), test=False)
    assert not history.stopped and "max_steps=3" in history.reason
    assert history.last["images"] == 192 and history.last["partial"] and history.last["test_acc"] is None


@pytest.mark.parametrize("kwargs, names", [
    (dict(num_epochs=0, lr=0.1), "num_epochs 0"),
    (dict(num_epochs=1), "either lr"),
    (dict(num_epochs=1, lr=float("nan")), "learning rate nan"),
    (dict(num_epochs=1, lr=-1), "learning rate -1"),
    (dict(num_epochs=1, lr=0.1, device="tpu"), "device 'tpu'"),
    (dict(num_epochs=1, lr=0.1, callbacks=[print]), "callbacks[0]"),
])
def test_fit_refuses_bad_arguments_in_one_sentence(kwargs, names):
    batches = [(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))]
    with pytest.raises(checks.Refusal) as info:
        train.fit(nn.Linear(2, 2), batches, **kwargs)
    assert names in str(info.value)


@pytest.mark.parametrize("make, names", [
    (lambda: train.MaxSteps(0), "max_steps 0"),
    (lambda: train.GradClip(-1), "max_norm -1"),
    (lambda: train.GradClip(float("nan")), "max_norm nan"),
    (lambda: train.GradClip("1"), "max_norm '1'"),
    (lambda: train.NaNGuard(0), "check_every 0"),
    (lambda: train.MixedPrecision("yes"), "mixed precision 'yes'"),
    (lambda: train.Checkpoint("x.pt", resume="yes"), "resume 'yes'"),
])
def test_callbacks_refuse_bad_values(make, names):
    with pytest.raises(checks.Refusal) as info:
        make()
    assert names in str(info.value)


def test_an_empty_data_iterable_is_one_sentence():
    with pytest.raises(checks.Refusal) as info:
        train.fit(nn.Linear(2, 2), [], num_epochs=1, lr=0.1, callbacks=quiet())
    assert "train_iter gave no batches in epoch 1" in str(info.value)


def test_input_the_net_cannot_take_is_one_sentence(fmnist):
    """Images with 3 channels, or smaller than the net needs: the refusal names the numbers, not PyTorch's error."""
    net = models.nin(arch=28, width=0.25)
    three = [(torch.zeros(4, 3, 28, 28), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(checks.Refusal) as info:
        train.fit(net, three, num_epochs=1, lr=0.1, callbacks=quiet())
    assert "3" in str(info.value) and "channel" in str(info.value)
    small = data.Batches(fmnist.test_images[:8], fmnist.test_labels[:8], 8, resize=66)
    with pytest.raises(checks.Refusal) as info:
        train.fit(models.nin(width=0.25), small, num_epochs=1, lr=0.1, callbacks=quiet())
    assert "67" in str(info.value)


def test_a_schedule_shorter_than_the_run_is_refused(fmnist, tmp_path):
    ckpt = tmp_path / "run.pt"
    tiny_run(fmnist, num_epochs=1).fit(quiet(train.Checkpoint(ckpt)))
    longer = tiny_run(fmnist, num_epochs=1)
    longer.preset = longer.preset.with_overrides(num_epochs=2)
    with pytest.raises(checks.Refusal, match=r"covers 4 batches but 2 epochs of 4 batches need 8; resume with .*\(1\)"):
        longer.fit(quiet(train.Checkpoint(ckpt, resume=True, verbose=False)))


def test_history_round_trips_through_json(tmp_path):
    h = train.History([{"epoch": 1, "loss": 0.5, "train_acc": 0.8, "test_acc": 0.7, "seconds": 1.0,
                        "train_seconds": 0.9, "images_per_s": 100.0, "images": 90, "lr": 0.1}],
                      stopped=True, reason="stopped by request", meta={"preset": {"name": "quick"}})
    back = train.History.load_json(h.save_json(tmp_path / "h.json"))
    assert back.to_dict() == h.to_dict() and back.test_acc == [0.7] and back.stopped
    assert "1 epoch(s)" in h.summary() and "stopped by request" in h.summary()
    assert train.format_epoch(h[0], 10).startswith("epoch 1/10: loss 0.500, train acc 0.800, test acc 0.700")
