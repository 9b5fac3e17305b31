"""What a run needs before it starts (``resources``): memory counted in GiB and CPU time from counted FLOPs, as the
presets, the book's train_ch6 on a Binder-sized machine and the training panel use them."""
import pytest
import torch

from nin_lib import checks, d2l, models, presets, resources, runtime, shapes

SEED_IMAGE = (1, 224, 224)


@pytest.fixture(scope="module")
def book224():
    torch.manual_seed(0)
    return d2l.load_data_fashion_mnist(128, resize=224)


def test_a_training_step_is_counted_and_what_fits_is_said_in_gib():
    net = models.nin()
    need = resources.step_bytes(net, SEED_IMAGE, 128)
    assert need == shapes.cost(net, 224, 128)["train_bytes"]
    budget = 512 * 2**20
    most = resources.largest_batch(net, SEED_IMAGE, budget)
    assert resources.step_bytes(net, SEED_IMAGE, most) <= budget < resources.step_bytes(net, SEED_IMAGE, most + 1)
    assert resources.check_memory(net, SEED_IMAGE, most, "cpu", available=budget) <= budget
    with pytest.raises(checks.Refusal) as refused:
        resources.check_memory(net, SEED_IMAGE, 128, "cpu", available=budget)
    message = str(refused.value)
    assert f"batch_size 128 needs about {need / 2**30:.1f} GiB" in message and "only 0.5 GiB free" in message
    assert f"use a batch size of at most {most}" in message
    with pytest.raises(checks.Refusal, match="not even one image of this size fits"):
        resources.check_memory(net, SEED_IMAGE, 1, "cpu", available=2**20)


def test_a_preset_counts_its_optimiser_and_bf16_and_reads_the_real_free_memory():
    p = presets.get_preset("d2l")
    sgd = presets.memory_estimate(p)
    weights = 4 * models.count_parameters(p.build_net("meta"))
    assert presets.memory_estimate(p.with_overrides(momentum=0.9)) - sgd == weights
    assert presets.memory_estimate(p.with_overrides(optimizer="adamw")) - sgd == 2 * weights
    assert presets.memory_estimate(p, bf16=True) < sgd
    quick = presets.get_preset("quick")
    assert presets.check_memory(quick, "cpu") == presets.memory_estimate(quick)  # it fits, whatever is free
    big = presets.get_preset("d2l", resize=1024, batch_size=60000)
    need = f"{presets.memory_estimate(big) / 2**30:,.1f} GiB"
    with pytest.raises(checks.Refusal, match=f"batch_size 60000 needs about {need}"):
        presets.check_memory(big, "cpu", available=10**12)


def test_cpu_time_is_counted_so_a_busy_machine_gives_the_same_estimate():
    p = presets.get_preset("d2l", subset=10000)
    t = presets.seconds_per_image(p)
    assert t == shapes.cost(models.nin(), 224)["train_flops"] / resources.CPU_FLOPS
    with pytest.raises(checks.Refusal) as refused:
        presets.check_cpu_time(p, 100000)
    message = str(refused.value)
    assert "the d2l preset's net needs about 4.51 billion floating-point operations" in message
    assert "100,000 training images would take at least 75 minutes" in message
    quick = presets.get_preset("quick")
    assert presets.check_cpu_time(quick, 60000) < 60 < 60000 * t / 10


def test_the_book_on_a_cpu_is_cut_by_the_counted_estimate(book224):
    train_iter, test_iter = book224
    plan = d2l.plan_run(models.nin(), train_iter, test_iter, 10, torch.device("cpu"), fast=False)
    rate = 1 / resources.seconds_per_image(models.nin(), SEED_IMAGE)
    assert plan.note.startswith(f"cpu: training runs at about {rate:.1f} images/s at most")
    assert plan.num_epochs == d2l.CPU_EPOCHS and "running a short check instead" in plan.note


def test_the_short_check_uses_batches_whose_step_fits_the_memory_budget(book224):
    train_iter, test_iter = book224
    net = models.nin()
    assert d2l.step_bytes(net, train_iter.image_shape, 128) > d2l.CPU_MEMORY  # the book's batch would not fit
    plan = d2l.plan_run(net, train_iter, test_iter, 10, torch.device("cpu"), fast=False, seconds_per_image=0.1)
    size = plan.train_iter.batch_size
    assert size < 128 and d2l.step_bytes(net, train_iter.image_shape, size) <= d2l.CPU_MEMORY
    in_time = d2l.CPU_TARGET_S / d2l.estimate_seconds(0.1, 1, 0.5, plan.num_epochs)  # images the check's time allows
    doubled = 2 * size  # the next power of two would not fit the memory, or not four times in the check's time
    assert d2l.step_bytes(net, train_iter.image_shape, doubled) > d2l.CPU_MEMORY or 4 * doubled > in_time
    assert d2l.estimate_seconds(0.1, plan.train_iter.num_examples, plan.test_iter.num_examples,
                                plan.num_epochs) <= d2l.CPU_TARGET_S
    assert f"in batches of {size}," in plan.note


def test_a_run_that_fits_the_time_but_not_the_memory_is_refused(book224, monkeypatch):
    train_iter, test_iter = book224
    monkeypatch.setattr(runtime, "available_memory", lambda device: 300 * 2**20)
    with pytest.raises(checks.Refusal) as refused:
        d2l.plan_run(models.nin(), train_iter, test_iter, 1, torch.device("cpu"), fast=False, seconds_per_image=1e-9)
    assert "batch_size 128 needs about 0.9 GiB" in str(refused.value) and "only 0.3 GiB free" in str(refused.value)
