"""Presets (lesson 05): the seed's recipe exactly, validated values, one sentence per bad value."""
import math

import pytest
import torch
from torch import nn

from nin_lib import checks, data, models, presets


def test_d2l_preset_is_the_seed_recipe():
    p = presets.get_preset("d2l")
    assert (p.arch, p.width, p.batch_norm, p.dropout, p.num_1x1, p.final_relu) == (224, 1.0, False, 0.5, 2, True)
    assert (p.init, p.lr, p.momentum, p.nesterov, p.weight_decay) == ("xavier", 0.1, 0.0, False, 0.0)
    assert (p.schedule, p.label_smoothing, p.flip) == ("constant", 0.0, False)
    assert (p.batch_size, p.num_epochs, p.resize, p.subset) == (128, 10, 224, None)
    net = p.build_net()
    assert models.count_parameters(net) == 1_992_166
    assert str(net) == str(models.nin())  # module for module the seed's net


def test_d2l_run_uses_plain_sgd_and_no_schedule(fmnist):
    run = presets.build_run("d2l", data=fmnist, device="cpu", subset=256, test_subset=256)
    group = run.optimizer.param_groups[0]
    assert isinstance(run.optimizer, torch.optim.SGD) and run.scheduler is None
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.1, 0, False, 0)
    assert run.loss.label_smoothing == 0.0
    X, y = next(iter(run.train_iter))
    assert X.shape == (128, 1, 224, 224) and X.dtype == torch.float32 and 0 <= X.min() and X.max() <= 1


def test_xavier_init_is_applied():
    torch.manual_seed(0)
    w = presets.get_preset("d2l").build_net()[0][0].weight
    fan_in, fan_out = 1 * 11 * 11, 96 * 11 * 11
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


def test_improved_and_quick_presets():
    improved = presets.get_preset("improved")
    assert improved.batch_norm and improved.nesterov and improved.momentum == 0.9
    assert improved.weight_decay == 5e-4 and improved.schedule == "onecycle"
    assert improved.label_smoothing == 0.1 and improved.flip and improved.resize == 224
    quick = presets.get_preset("quick")
    assert quick.arch == 28 and quick.batch_norm and quick.width < 1 and quick.image_size() == 28
    for p in (improved, quick):
        assert not p.final_relu
        assert not isinstance(p.build_net()[-3][-1], nn.ReLU)  # no ReLU on the class scores


def test_onecycle_run_builds_a_scheduler_over_all_batches(fmnist):
    run = presets.build_run("quick", data=fmnist, device="cpu", subset=512, batch_size=64, num_epochs=3,
                            test_subset=64)
    assert isinstance(run.scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert run.scheduler.total_steps == 3 * 8


def test_with_overrides_makes_a_new_validated_preset():
    p = presets.get_preset("quick")
    q = p.with_overrides(lr=0.05, num_epochs=2)
    assert (q.lr, q.num_epochs, q.name) == (0.05, 2, "quick") and p.lr != 0.05
    assert presets.get_preset("quick", lr=0.05, num_epochs=2) == q
    assert q.to_dict()["lr"] == 0.05 and q.to_dict()["name"] == "quick"
    assert presets.names() == ["d2l", "improved", "quick", "maps"]


@pytest.mark.parametrize("overrides, says", [
    (dict(lr=0), "learning rate 0 is not allowed"),
    (dict(lr=-0.1), "learning rate -0.1 is not allowed"),
    (dict(lr=float("nan")), "learning rate nan is not allowed"),
    (dict(lr="0.1"), "learning rate '0.1' is not allowed"),
    (dict(batch_size=0), "batch_size 0 is not allowed"),
    (dict(batch_size=-5), "batch_size -5 is not allowed"),
    (dict(batch_size=2.5), "batch_size 2.5 is not allowed"),
    (dict(batch_size=True), "batch_size True is not allowed"),
    (dict(batch_size=70000), "batch_size 70000 is not allowed; use a whole number from 1 to 60000"),  # the data's
    (dict(num_epochs=0), "num_epochs 0 is not allowed"),
    (dict(momentum=1.0), "momentum 1.0 is not allowed"),
    (dict(dropout=-0.1), "dropout -0.1 is not allowed"),  # a value of the net: models.nin checks it
    (dict(width=0), "width 0 is not allowed"),
    (dict(num_1x1=7), "num_1x1 7 is not allowed"),
    (dict(head="mlp"), "head 'mlp' is not known"),
    (dict(device="tpu"), "device 'tpu' is not known"),
    (dict(schedule="step"), "schedule 'step' is not known"),
    (dict(resize=32), "image size 32 is too small for the d2l preset's net"),
    (dict(subset=64), "batch_size 128 is larger than the subset of 64 training images"),
    (dict(test_subset=20000), "test_subset 20000 is not allowed"),
    (dict(nesterov=True), "nesterov=True needs momentum > 0"),
    (dict(colour="red"), "setting 'colour' is not known"),
])
def test_bad_values_raise_one_sentence(overrides, says):
    with pytest.raises(checks.Refusal) as refused:
        presets.get_preset("d2l", **overrides)
    message = str(refused.value)
    assert message.startswith(says) and message.endswith(".") and message.count(". ") == 0


def test_a_preset_checks_the_nets_values_by_building_it_on_the_meta_device():
    rng = torch.get_rng_state()
    net = presets.get_preset("quick", head="late").build_net("meta")
    assert next(net.parameters()).device.type == "meta" and torch.equal(rng, torch.get_rng_state())
    with pytest.raises(checks.Refusal, match=r"^resize 5000 is not allowed.*would need about [\d,.]+ GiB\)\.$"):
        presets.get_preset("d2l", resize=5000)


def test_the_test_subset_is_the_datas_one_subset_and_says_which(fmnist):
    run = presets.build_run("quick", data=fmnist, device="cpu", subset=256, test_subset=300, seed=3)
    index = data.subset_indices(len(fmnist.test_labels), 300, 3)
    assert torch.equal(run.test_iter.indices, index) and torch.equal(run.test_iter.labels, fmnist.test_labels[index])
    assert run.test_iter.batch_size == 100 and len(run.train_iter.labels) == 256


def test_unknown_preset():
    with pytest.raises(checks.Refusal, match=r"preset 'fast' is not known; choose one of d2l, improved, quick, maps\."):
        presets.get_preset("fast")
    with pytest.raises(checks.Refusal, match="preset 'fast' is not known"):
        presets.build_run("fast")
