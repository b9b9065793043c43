"""KTH models, patch aggregation, the Min-PatchGAN schedule, KTHObjective, and the KTH recipes."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from colorbook.losses.kth import KTHObjective, aggregate_patches, patch_aggregation_mode
from colorbook.models.common import count_parameters
from colorbook.models.kth import (
    GENERATORS,
    SCALAR_DISCRIMINATOR_SPECS,
    GeneratorV1,
    GeneratorV2,
    GeneratorV3,
    PatchDiscriminator,
    ScalarDiscriminator,
    receptive_field,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread for these small models: on the shared 2-core machine a 2-thread
    parallel region waits for a descheduled thread (a BatchNorm of 2x64x32x32 took 35 ms with
    2 threads and 0.45 ms with 1 under load); restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def floats(logs):
    """Objectives log detached tensors (read by the loop in one sync); tests compare plain floats."""
    return {k: float(v) for k, v in logs.items()}


class State:
    """Stand-in for colorbook.core.TrainState with a settable epoch."""

    def __init__(self, epoch: float = 0.0, iteration: int = 0, seed: int = 0) -> None:
        self.epoch = epoch
        self.iteration = iteration
        self.rng = torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Architectures


def _conv_params(cin, cout, k, bn=True):
    return cin * cout * k * k + (2 * cout if bn else 0)


def test_parameter_counts_match_the_layer_tables():
    """Counts recomputed from the layer lists of the docstrings (no biases, BatchNorm scale + shift)."""
    # V2: encoder 1-64-128-256-512-512 (k 6,6,4,2,2); decoder in 512,1024,512,256,128 (k 2,2,4,6,6)
    v2 = (_conv_params(1, 64, 6) + _conv_params(64, 128, 6) + _conv_params(128, 256, 4) + _conv_params(256, 512, 2)
          + _conv_params(512, 512, 2) + _conv_params(512, 512, 2) + _conv_params(1024, 256, 2)
          + _conv_params(512, 128, 4) + _conv_params(256, 64, 6) + _conv_params(128, 3, 6, bn=False))
    v1 = (sum(_conv_params(a, b, 3) for a, b in [(1, 64), (64, 128), (128, 256), (256, 512), (512, 512)])
          + sum(_conv_params(a, b, 3) for a, b in [(512, 512), (512, 256), (256, 128), (128, 64)])
          + _conv_params(64, 3, 3, bn=False))
    v3 = (sum(_conv_params(a, b, k) for a, b, k in [(1, 80, 8), (80, 160, 8), (160, 320, 6), (320, 640, 6), (640, 640, 2)])
          + sum(_conv_params(a, b, k) for a, b, k in [(640, 640, 2), (640, 320, 6), (320, 160, 6), (160, 80, 8)])
          + _conv_params(80, 3, 8, bn=False))
    assert count_parameters(GeneratorV2()) == v2 == 6_148_608
    assert count_parameters(GeneratorV1()) == v1 == 7_822_336
    assert count_parameters(GeneratorV3()) == v3 == 23_373_760
    patch = (_conv_params(3, 64, 6) + _conv_params(64, 128, 6) + _conv_params(128, 256, 4) + _conv_params(256, 512, 3)
             + _conv_params(512, 1, 3, bn=False))
    assert count_parameters(PatchDiscriminator()) == patch == 2_012_288
    assert count_parameters(PatchDiscriminator(condition_on_gray=True)) == patch + 64 * 36
    scalar_v2 = (_conv_params(3, 64, 6) + _conv_params(64, 128, 6) + _conv_params(128, 256, 4) + _conv_params(256, 512, 4)
                 + _conv_params(512, 512, 2) * 2 + _conv_params(512, 1, 1) + _conv_params(1, 1, 4, bn=False))
    assert count_parameters(ScalarDiscriminator("v2", 256)) == scalar_v2 == 5_024_914


def test_scalar_discriminator_kernels_are_the_papers_at_256():
    kernels = {name: [m.kernel_size[0] for m in ScalarDiscriminator(name, 256).modules() if isinstance(m, nn.Conv2d)]
               for name in SCALAR_DISCRIMINATOR_SPECS}
    assert kernels["v2"] == [6, 6, 4, 4, 2, 2, 1, 4]
    assert kernels["v1"] == [3, 3, 3, 3, 3, 5, 1, 4]
    assert kernels["v3"] == [8, 8, 6, 6, 2, 2, 1, 4]


@pytest.mark.parametrize("name", list(GENERATORS))
@pytest.mark.parametrize("size", [256, 64, 32])
def test_generators_map_gray_to_rgb_in_unit_range(name, size):
    torch.manual_seed(0)
    model = GENERATORS[name]()
    assert model.color_space == "rgb"
    with torch.no_grad():
        out = model(torch.rand(1 if size == 256 else 2, 1, size, size))
    assert out.shape[1:] == (3, size, size)
    assert out.min() >= 0 and out.max() <= 1


def test_generator_v2_output_size_for_non_square_input():
    with torch.no_grad():
        assert GeneratorV2()(torch.rand(2, 1, 64, 96)).shape == (2, 3, 64, 96)


@pytest.mark.parametrize("shape", [(1, 1, 48, 64), (1, 1, 100, 100), (1, 1, 16, 16)])
def test_generators_reject_sizes_that_are_not_multiples_of_32(shape):
    with pytest.raises(ValueError, match="multiples of 32"):
        GeneratorV2()(torch.rand(*shape))


def test_generators_reject_rgb_input():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        GeneratorV1()(torch.rand(1, 3, 64, 64))


def test_v2_skip_connections_carry_the_input_and_v1_has_none():
    assert GeneratorV2().skips and not GeneratorV1().skips and not GeneratorV3().skips
    # V2's decoder reads 1024/512/256/128 channels: its own output plus the encoder's
    ins = [m.in_channels for m in GeneratorV2().decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert ins == [512, 1024, 512, 256, 128]


@pytest.mark.parametrize("variant", list(SCALAR_DISCRIMINATOR_SPECS))
@pytest.mark.parametrize("size", [256, 128, 64])
def test_scalar_discriminators_give_one_probability_per_image(variant, size):
    model = ScalarDiscriminator(variant, size)
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size), torch.rand(2, 1, size, size))
    assert out.shape == (2,)
    assert ((out > 0) & (out < 1)).all()


def test_scalar_discriminator_errors():
    with pytest.raises(ValueError, match="multiple of 64"):
        ScalarDiscriminator("v2", 96)
    with pytest.raises(ValueError, match="built for 64x64"):
        ScalarDiscriminator("v2", 64)(torch.rand(1, 3, 128, 128))
    with pytest.raises(ValueError, match="unknown scalar discriminator"):
        ScalarDiscriminator("v9", 64)


@pytest.mark.parametrize("size,patches", [(256, 32), (64, 8), (128, 16)])
def test_patch_discriminator_map_is_one_eighth_of_the_input(size, patches):
    with torch.no_grad():
        out = PatchDiscriminator()(torch.rand(2, 3, size, size), torch.rand(2, 1, size, size))
    assert out.shape == (2, 1, patches, patches)
    assert ((out > 0) & (out < 1)).all()


def test_patch_discriminator_receptive_field_is_60_and_measured_by_gradients():
    """The analytic receptive field equals the extent of input pixels that influence one output."""
    torch.manual_seed(0)
    model = PatchDiscriminator().eval()  # eval: BatchNorm statistics would otherwise mix positions
    assert model.receptive_field == receptive_field(model) == 60
    image = torch.rand(1, 3, 128, 128, requires_grad=True)
    model(image, None)[0, 0, 8, 8].backward()
    touched = image.grad.abs().sum(dim=(0, 1)) > 0
    rows = touched.any(dim=1).nonzero().flatten()
    cols = touched.any(dim=0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 60
    assert cols.max() - cols.min() + 1 == 60


def test_scalar_discriminator_v2_sees_the_whole_256_image():
    assert ScalarDiscriminator("v2", 256).receptive_field >= 256


def test_patch_discriminator_ignores_gray_unless_conditioned():
    torch.manual_seed(0)
    image, gray_a, gray_b = torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64), torch.ones(2, 1, 64, 64)
    plain = PatchDiscriminator().eval()
    assert torch.equal(plain(image, gray_a), plain(image, gray_b))
    conditioned = PatchDiscriminator(condition_on_gray=True).eval()
    assert conditioned.net[0].in_channels == 4
    assert not torch.allclose(conditioned(image, gray_a), conditioned(image, gray_b))
    with pytest.raises(ValueError, match="conditioned on the gray input"):
        conditioned(image, None)
    with pytest.raises(ValueError, match="multiples of 8"):
        plain(torch.rand(1, 3, 60, 60), None)


# ---------------------------------------------------------------------------------------------
# Aggregation


def test_mean_aggregation_is_the_plain_average():
    p = torch.tensor([[[[0.1, 0.9], [0.5, 0.7]]], [[[0.2, 0.2], [0.2, 0.2]]]])
    assert torch.allclose(aggregate_patches(p, "mean"), torch.tensor([0.55, 0.2]))


def test_softmin_is_pulled_to_the_least_real_patch_and_softmax_to_the_most():
    p = torch.tensor([[0.9, 0.9, 0.9, 0.1]])
    mean = aggregate_patches(p, "mean").item()
    softmin = aggregate_patches(p, "softmin").item()
    softmax = aggregate_patches(p, "softmax").item()
    # by hand: w = p^-1 / sum p^-1 -> weight of the 0.1 patch is 10 / (10 + 3/0.9) = 0.75
    by_hand = math.exp(0.75 * math.log(0.1) + 0.25 * math.log(0.9))
    assert softmin == pytest.approx(by_hand, rel=1e-5)
    assert softmin < 0.2 < mean
    assert softmax > mean
    # a sharper alpha comes closer to the hard min
    assert aggregate_patches(p, "softmin", alpha=-8.0).item() < softmin
    assert aggregate_patches(p, "softmin", alpha=-8.0).item() == pytest.approx(0.1, abs=0.01)


def test_aggregation_of_a_uniform_map_is_its_value_in_every_mode():
    p = torch.full((3, 1, 4, 4), 0.3)
    for mode in ("mean", "softmin", "softmax"):
        assert torch.allclose(aggregate_patches(p, mode), torch.full((3,), 0.3), atol=1e-6)


def test_aggregation_gradients_reach_every_patch_and_are_finite_at_saturation():
    for mode in ("mean", "softmin", "softmax"):
        out = aggregate_patches(torch.tensor([[[[0.0, 1.0], [0.3, 0.8]]]]), mode)
        assert torch.isfinite(out).all() and 0 < out.item() < 1
        p2 = torch.tensor([[[[0.05, 0.95], [0.3, 0.8]]]], requires_grad=True)
        aggregate_patches(p2, mode).sum().backward()
        assert torch.isfinite(p2.grad).all()
        assert (p2.grad.abs() > 0).all(), f"{mode}: every patch must receive a gradient"


def test_softmin_gradient_is_largest_on_the_worst_patch():
    p = torch.tensor([[0.9, 0.8, 0.2]], requires_grad=True)
    aggregate_patches(p, "softmin").sum().backward()
    assert p.grad[0, 2] == p.grad.max()


def test_aggregation_of_scalar_output_and_errors():
    p = torch.tensor([0.3, 0.7])
    assert torch.equal(aggregate_patches(p, "softmin"), p)
    with pytest.raises(ValueError, match="unknown aggregation mode"):
        aggregate_patches(p, "median")


def test_min_patchgan_schedule():
    assert [patch_aggregation_mode("mean", 100.0, 5.0, s) for s in ("d_real", "d_fake", "g")] == ["mean"] * 3
    assert [patch_aggregation_mode("min", 4.99, 5.0, s) for s in ("d_real", "d_fake", "g")] == ["mean"] * 3
    assert [patch_aggregation_mode("min", 5.0, 5.0, s) for s in ("d_real", "d_fake", "g")] == \
        ["softmin", "softmax", "softmin"]
    with pytest.raises(ValueError, match="aggregation"):
        patch_aggregation_mode("max", 0.0, 5.0, "g")
    with pytest.raises(ValueError, match="pass"):
        patch_aggregation_mode("min", 0.0, 5.0, "d")


# ---------------------------------------------------------------------------------------------
# Objective


class FixedPatchD(nn.Module):
    """A 'discriminator' returning a fixed patch map for real (all-ones) and fake (all-zeros) images."""

    def __init__(self, real_map, fake_map):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.real_map, self.fake_map = real_map, fake_map

    def forward(self, image, gray):
        chosen = self.real_map if image.mean() > 0.5 else self.fake_map
        return chosen * self.scale


def _bce(p, y):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_objective_switches_from_mean_to_softmin_softmax_at_the_switch_epoch():
    real_map = torch.tensor([[[[0.9, 0.9], [0.9, 0.3]]]])
    fake_map = torch.tensor([[[[0.1, 0.1], [0.1, 0.6]]]])
    D = FixedPatchD(real_map, fake_map)
    real, fake, gray = torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    objective = KTHObjective(aggregation="min", switch_epoch=2.0, label_smoothing=(1.0, 1.0))
    before, logs_before = objective.critic_loss(D, real, fake, gray, State(epoch=1.9))
    after, logs_after = objective.critic_loss(D, real, fake, gray, State(epoch=2.0))
    logs_before, logs_after = floats(logs_before), floats(logs_after)
    assert logs_before["aggregation_softmin"] == 0.0 and logs_after["aggregation_softmin"] == 1.0
    mean_real, mean_fake = real_map.mean().item(), fake_map.mean().item()
    assert before.item() == pytest.approx(_bce(mean_real, 1.0) + _bce(mean_fake, 0.0), rel=1e-5)
    soft_real = aggregate_patches(real_map, "softmin").item()
    soft_fake = aggregate_patches(fake_map, "softmax").item()
    assert after.item() == pytest.approx(_bce(soft_real, 1.0) + _bce(soft_fake, 0.0), rel=1e-5)
    assert after.item() > before.item(), "the worst patches now dominate: the loss jumps (the paper's Figure 8)"
    g_after, g_logs = objective.generator_loss(D, real, fake, gray, State(epoch=3.0))
    g_logs = floats(g_logs)
    assert g_logs["aggregation_softmin"] == 1.0
    assert g_logs["g_adv"] == pytest.approx(_bce(aggregate_patches(fake_map, "softmin").item(), 1.0), rel=1e-5)
    assert g_logs["g_l1"] == pytest.approx(1.0)
    assert g_after.item() == pytest.approx(g_logs["g_adv"] + 100.0, rel=1e-5)


def test_avg_patchgan_never_switches():
    objective = KTHObjective(aggregation="mean")
    D = FixedPatchD(torch.full((1, 1, 2, 2), 0.8), torch.full((1, 1, 2, 2), 0.2))
    _, logs = objective.critic_loss(D, torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), None, State(epoch=99))
    assert logs["aggregation_softmin"] == 0.0


def test_label_smoothing_comes_from_the_state_generator_and_stays_in_range():
    D = FixedPatchD(torch.full((64, 1, 2, 2), 0.8), torch.full((64, 1, 2, 2), 0.2))
    objective = KTHObjective()
    args = (D, torch.ones(64, 3, 8, 8), torch.zeros(64, 3, 8, 8), None)
    a = floats(objective.critic_loss(*args, State(seed=1))[1])
    b = floats(objective.critic_loss(*args, State(seed=1))[1])
    c = floats(objective.critic_loss(*args, State(seed=2))[1])
    assert a == b and a["d_real_label"] != c["d_real_label"]
    assert 0.85 < a["d_real_label"] < 0.95  # mean of 64 draws of U[0.8, 1]
    single = FixedPatchD(torch.full((1, 1, 2, 2), 0.8), torch.full((1, 1, 2, 2), 0.2))
    state = State(seed=3)
    labels = [float(objective.critic_loss(single, torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), None,
                                          state)[1]["d_real_label"]) for _ in range(20)]
    assert min(labels) >= 0.8 and max(labels) <= 1.0 and max(labels) - min(labels) > 0.05


def test_objective_uses_its_own_epoch_length_when_given():
    objective = KTHObjective(aggregation="min", switch_epoch=5.0, iterations_per_epoch=500)
    assert not objective.switched(State(epoch=100.0, iteration=2499))
    assert objective.switched(State(epoch=0.1, iteration=2500))


# ---------------------------------------------------------------------------------------------
# Recipes and training


KTH_NAMES = ["v1", "v2", "v3", "avg-patchgan", "min-patchgan", "min-patchgan-cond", "avg-patchgan-l1-10", "v2-l1"]


def test_kth_recipes_are_registered_with_the_papers_settings():
    from colorbook.recipes import get, table
    assert {r.name for r in table("kth")} == set(KTH_NAMES)
    v2 = get("v2")
    assert (v2.family, v2.dataset, v2.image_size, v2.batch_size, v2.lr) == ("kth", "cartoons", 256, 56, 2e-4)
    assert v2.options["d_optimizer"] == "sgd" and v2.options["d_lr"] == 4e-4
    assert v2.options["d_weight_decay"] == 1e-4 and v2.options["d_lr_halving_epochs"] == 5
    assert get("v1").options["g_optimizer"] == "sgd" and get("v1").options["d_optimizer"] == "adam"
    assert get("v3").options["d_optimizer"] == "adam"
    assert get("min-patchgan").options["aggregation"] == "min"
    assert get("min-patchgan").options["switch_epoch"] == 5.0
    assert get("avg-patchgan").options["aggregation"] == "mean"
    assert get("min-patchgan-cond").options["condition_on_gray"] is True
    smaller_l1 = get("avg-patchgan-l1-10").options
    assert smaller_l1["l1_weight"] == 10.0 and smaller_l1 == {**get("avg-patchgan").options, "l1_weight": 10.0}
    assert get("min-patchgan").paper["metric"] is None


def test_quick_min_patchgan_switches_inside_the_run_on_the_default_data():
    from colorbook.data.cartoons import DEFAULT_GENERATED_SIZES
    from colorbook.recipes import get
    quick = get("min-patchgan").resolve("quick")
    steps_per_epoch = DEFAULT_GENERATED_SIZES["train"] // quick.batch_size
    switch_iteration = math.ceil(quick.options["switch_epoch"] * steps_per_epoch)
    assert 0 < switch_iteration < quick.iters
    assert quick.options["schedule_epoch_images"] is None


def _tiny_step_check(recipe_name: str, **options):
    from colorbook.color import rgb_to_gray
    from colorbook.recipes import get
    from colorbook.recipes.kth import build_kth
    from colorbook.training.loop import read_logs
    from colorbook.training.step import train_step
    recipe = get(recipe_name).resolve("quick").with_options(**options)
    parts = build_kth(recipe, torch.device("cpu"), steps_per_epoch=2)
    G, D = parts.generator, parts.critic
    torch.manual_seed(0)
    real = torch.rand(2, 3, recipe.image_size, recipe.image_size)
    gray = rgb_to_gray(real)
    before_g = [p.detach().clone() for p in G.parameters()]
    before_d = [p.detach().clone() for p in D.parameters()]
    # the trainer's own step, not a copy of it
    logs = read_logs([(0, 0.0, train_step(parts, real, gray, State(epoch=0.0, iteration=0)))])[0]
    assert all(math.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(before_g, G.parameters())), "G did not change"
    assert any(not torch.equal(a, b) for a, b in zip(before_d, D.parameters())), "D did not change"
    return logs


@pytest.mark.parametrize("name", ["v1", "v2", "v3", "avg-patchgan", "min-patchgan-cond"])
def test_each_model_trains_a_few_steps_on_cpu(name):
    _tiny_step_check(name)


def test_l1_only_ablation_trains_v2_without_a_discriminator():
    from colorbook.color import rgb_to_gray
    from colorbook.recipes import get
    from colorbook.recipes.kth import build_kth
    from colorbook.training.loop import read_logs
    from colorbook.training.step import train_step
    recipe = get("v2-l1").resolve("quick")
    parts = build_kth(recipe, torch.device("cpu"), steps_per_epoch=2)
    assert parts.critic is None and parts.opt_d is None and not parts.objective.uses_critic
    assert type(parts.generator) is type(build_kth(get("v2").resolve("quick"), torch.device("cpu"), 2).generator)
    torch.manual_seed(0)
    real = torch.rand(2, 3, recipe.image_size, recipe.image_size)
    before = [p.detach().clone() for p in parts.generator.parameters()]
    logs = read_logs([(0, 0.0, train_step(parts, real, rgb_to_gray(real), State(epoch=0.0, iteration=0)))])[0]
    assert set(logs) == {"iteration", "epoch", "g_l1", "g_loss"}  # no discriminator, no adversarial term
    assert any(not torch.equal(a, b) for a, b in zip(before, parts.generator.parameters()))
    # its loss is the L1 term alone: 100 x mean |fake - real|
    fake = parts.generator(rgb_to_gray(real))
    loss, _ = parts.objective.generator_loss(None, real, fake, rgb_to_gray(real), State(epoch=0.0, iteration=1))
    assert torch.allclose(loss, 100 * (fake - real).abs().mean())


def test_min_patchgan_softmin_mode_trains_on_cpu():
    logs = _tiny_step_check("min-patchgan", switch_epoch=0.0)
    assert logs["aggregation_softmin"] == 1.0


def test_discriminator_learning_rate_halves_every_5_epochs():
    from colorbook.recipes import get
    from colorbook.recipes.kth import build_kth
    recipe = get("avg-patchgan").resolve("quick")
    parts = build_kth(recipe, torch.device("cpu"), steps_per_epoch=3)
    (scheduler,) = parts.schedulers
    lrs = []
    for _ in range(31):
        lrs.append(parts.opt_d.param_groups[0]["lr"])
        parts.opt_d.step()
        scheduler.step()
    assert lrs[0] == lrs[14] == pytest.approx(4e-4)   # epochs 0-4 (3 iterations each)
    assert lrs[15] == lrs[29] == pytest.approx(2e-4)  # epochs 5-9
    assert lrs[30] == pytest.approx(1e-4)
    assert parts.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4)
    # the full profile counts the paper's epochs of 28,000 images = 500 iterations of 56
    full = build_kth(get("avg-patchgan").with_options(), torch.device("cpu"), steps_per_epoch=3)
    assert full.schedulers[0].lr_lambdas[0].iterations_per_epoch == 500
    assert full.objective.iterations_per_epoch == 500


def test_train_min_patchgan_switches_aggregation_in_the_log_and_writes_samples(tmp_path):
    """The real trainer, tiny data: the log's aggregation flag turns on at the switch epoch."""
    from colorbook.data.cartoons import CartoonImages
    from colorbook.recipes import get
    from colorbook.training.loop import train
    train_set = CartoonImages(None, "train", 32, n=8)
    test_set = CartoonImages(None, "test", 32, n=4)
    recipe = get("min-patchgan").resolve("quick").with_options(switch_epoch=1.0)
    recipe = dataclasses.replace(recipe, batch_size=4, iters=3, image_size=32)  # 2 iterations per epoch
    train(recipe, tmp_path, dataset=train_set, eval_dataset=test_set, progress=False, num_samples=4,
          checkpoint_every=3)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["aggregation_softmin"] for r in rows] == [0.0, 0.0, 1.0]
    assert list((tmp_path / "samples").glob("iter_*.png"))
