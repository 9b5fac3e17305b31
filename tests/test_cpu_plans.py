"""What runs on a CPU: the book's train_ch6 on a Binder-sized machine (a short check in batches that fit the
memory, or a refusal that names what would not fit), and the training panel's refusal of a run far too slow."""
import pytest
import torch

from nin_lib import d2l, models, presets, runtime


@pytest.fixture(scope="module")
def book224():
    torch.manual_seed(0)
    return d2l.load_data_fashion_mnist(128, resize=224)


def test_the_short_check_uses_batches_whose_step_fits_the_memory_budget(book224):
    train_iter, test_iter = book224
    net = models.nin()
    assert d2l.step_bytes(net, train_iter.image_shape, 128) > d2l.CPU_MEMORY  # the book's batch would not fit
    plan = d2l.plan_run(net, train_iter, test_iter, 10, torch.device("cpu"), fast=False, seconds_per_image=0.1)
    size = plan.train_iter.batch_size
    assert size < 128 and d2l.step_bytes(net, train_iter.image_shape, size) <= d2l.CPU_MEMORY
    assert d2l.estimate_seconds(0.1, plan.train_iter.num_examples, plan.test_iter.num_examples,
                                plan.num_epochs) <= d2l.CPU_TARGET_S
    assert f"in batches of {size}," in plan.note and "running a short check instead" in plan.note


def test_a_run_that_fits_the_time_but_not_the_memory_is_refused(book224, monkeypatch):
    train_iter, test_iter = book224
    monkeypatch.setattr(runtime, "available_memory", lambda device: 300 * 2**20)
    with pytest.raises(ValueError, match=r"one training step of this net on batches of 128 needs about 0\.9 GiB but "
                                         r"this CPU has 0\.3 GiB free; load the data with a smaller batch_size\.$"):
        d2l.plan_run(models.nin(), train_iter, test_iter, 1, torch.device("cpu"), fast=False, seconds_per_image=1e-9)


def test_a_preset_run_far_too_slow_for_the_cpu_is_one_sentence():
    p = presets.get_preset("d2l", subset=10000)
    seconds = presets.cpu_seconds(p, 100000)
    assert seconds > 600 and seconds == presets.cpu_seconds(p, 100000)  # counted, so the same every time
    assert str(presets.too_slow(p, 100000, seconds, 600)) == (
        "the d2l preset's net needs about 4.51 billion floating-point operations per training image, so 100,000 "
        "training images would take at least 75 minutes on a CPU even at 100 GFLOP/s (more than 10 minutes); "
        "choose fewer images or epochs, the quick preset, or a GPU.")
    quick = presets.get_preset("quick")
    assert presets.cpu_seconds(quick, 60000) < 60 < presets.cpu_seconds(p, 60000) / 10
    assert 0 < presets.seconds_per_image(quick) < 1
