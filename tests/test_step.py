"""The one training step (colorbook.training.step.train_step), run for real: phase order, what each
phase sees, frozen critic, detached logs, lazy regularisation, and the schedules."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from colorbook.core import Components, TrainState
from colorbook.data.cartoons import CartoonImages
from colorbook.losses.dtu import DTUObjective, critical_noise_std
from colorbook.models.unet import UNetColorizer
from colorbook.recipes import get, get_family
from colorbook.training.checkpoint import load_checkpoint
from colorbook.training.loop import read_logs, train
from colorbook.training.step import adam_for_interval, critic_phase, prepare_batch, train_step

SIZE = 8


class SpyCritic(nn.Module):
    """A small real critic that records every call: its input, and whether its parameters were trainable."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(),
                                 nn.Linear(4 * SIZE * SIZE, 1))
        self.calls: list[tuple[torch.Tensor, bool]] = []

    def forward(self, image: torch.Tensor, gray: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append((image.detach().clone(), any(p.requires_grad for p in self.parameters())))
        return self.net(image).squeeze(1)


def _parts(objective: DTUObjective, reg_interval: int = 1) -> Components:
    torch.manual_seed(0)
    generator = UNetColorizer(depth=1, base_channels=4)
    critic = SpyCritic()
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = adam_for_interval(critic.parameters(), 1e-3, (0.5, 0.999), reg_interval)
    return Components(generator, critic, objective, opt_g, opt_d, schedulers=[], reg_interval=reg_interval)


def _batch():
    real = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return real, real[:, :1]


def _state(iteration: int = 0) -> TrainState:
    return TrainState(iteration, 100, 10, torch.Generator().manual_seed(2))


def test_generator_phase_sees_the_instance_noise_and_a_frozen_critic():
    objective = DTUObjective(noise_iters=100, smoothing=False, r1_gamma=0.0)
    parts = _parts(objective)
    real, gray = _batch()
    with torch.no_grad():
        fake = parts.generator(gray)  # the step's own G(gray): train mode, same weights, same batch
    train_step(parts, real, gray, _state())
    (d_fake, d_trainable_1), (d_real, d_trainable_2), (g_fake, g_trainable) = parts.critic.calls
    assert d_trainable_1 and d_trainable_2, "the critic must be trainable in its own phase"
    assert not g_trainable, "the critic must be frozen while the generator's loss runs through it"
    assert not any(p.requires_grad for p in parts.critic.parameters()), "the critic is left frozen"
    # the generator's adversarial term sees the same instance noise as the critic: std sqrt(2) at iteration 0
    noise = g_fake - fake
    assert noise.std().item() == pytest.approx(critical_noise_std(), rel=0.15)
    assert (d_fake - fake).std().item() == pytest.approx(critical_noise_std(), rel=0.15)


def test_critic_phase_runs_on_the_detached_fake_and_updates_only_the_critic():
    parts = _parts(DTUObjective(noise_iters=0, smoothing=False, r1_gamma=1.0))
    real, gray = _batch()
    critic_before = [p.detach().clone() for p in parts.critic.parameters()]
    generator_before = [p.detach().clone() for p in parts.generator.parameters()]
    logs = train_step(parts, real, gray, _state())
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, parts.critic.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(generator_before, parts.generator.parameters()))
    assert all(not (isinstance(v, torch.Tensor) and v.requires_grad) for v in logs.values())
    assert {"d_loss", "d_adv", "r1", "g_loss", "recon", "g_adv"} <= set(logs)
    row = read_logs([(0, 0.0, logs)])[0]
    assert row["d_loss"] == pytest.approx(row["d_adv"] + row["r1"], rel=1e-5)
    assert row["g_loss"] == pytest.approx(row["recon"] + row["g_adv"], rel=1e-5)
    assert all(math.isfinite(v) for v in row.values())


def test_lazy_regularisation_runs_the_penalty_every_k_steps_weighted_by_k():
    k = 4
    parts = _parts(DTUObjective(noise_iters=0, smoothing=False, r1_gamma=10.0), reg_interval=k)
    real, gray = _batch()
    rows = read_logs([(i, 0.0, train_step(parts, real, gray, _state(i))) for i in range(2 * k)])
    assert [("r1" in row) for row in rows] == [i % k == 0 for i in range(2 * k)]
    assert all(row["d_loss"] == pytest.approx(row["d_adv"], rel=1e-6) for row in rows), \
        "with k > 1 the penalty takes its own optimiser step, not the main one"
    group = parts.opt_d.param_groups[0]  # StyleGAN2: lr and betas scaled by c = k / (k + 1)
    c = k / (k + 1)
    assert group["lr"] == pytest.approx(1e-3 * c) and group["betas"][1] == pytest.approx(0.999 ** c)


def test_interval_one_is_a_single_adam_step_on_loss_plus_penalty():
    parts = _parts(DTUObjective(noise_iters=0, smoothing=False, r1_gamma=10.0), reg_interval=1)
    real, gray = _batch()
    steps = []
    parts.opt_d.register_step_post_hook(lambda *args: steps.append(1))
    row = read_logs([(0, 0.0, train_step(parts, real, gray, _state()))])[0]
    assert len(steps) == 1 and row["d_loss"] == pytest.approx(row["d_adv"] + row["r1"], rel=1e-5)


def test_train_steps_the_learning_rate_schedules(tmp_path):
    """The real trainer on a KTH recipe whose discriminator learning rate halves every epoch."""
    train_set, test_set = CartoonImages(None, "train", 32, n=8), CartoonImages(None, "test", 32, n=2)
    recipe = get("avg-patchgan").resolve("quick").with_options(d_lr_halving_epochs=1)
    recipe = dataclasses.replace(recipe, batch_size=4, iters=5, image_size=32)  # 2 iterations per epoch
    train(recipe, tmp_path, dataset=train_set, eval_dataset=test_set, progress=False, num_samples=2)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint["schedulers"][0]["last_epoch"] == 5
    assert checkpoint["opt_d"]["param_groups"][0]["lr"] == pytest.approx(4e-4 / 4)  # epochs 0, 1, 2 -> halved twice


def test_fast_switches_keep_the_step_finite_and_the_penalties_in_float32():
    """bf16 autocast, fused Adam, channels-last and batched log reads on the CPU: same phases, finite logs,
    the R1 penalty computed in float32 (its double backward is unstable in bfloat16)."""
    from colorbook.training.speed import Speed, accelerate
    parts = accelerate(_parts(DTUObjective(noise_iters=10, smoothing=True, r1_gamma=10.0)),
                       Speed(bf16_autocast=True, fused_adam=True, channels_last=True, log_every=3))
    seen_dtypes = []
    original = parts.objective.critic_penalty

    def recording_penalty(critic, real, fake, gray, state):
        seen_dtypes.append((real.dtype, torch.is_autocast_enabled("cpu")))
        return original(critic, real, fake, gray, state)
    parts.objective.critic_penalty = recording_penalty
    real, gray = _batch()
    rows = read_logs([(i, 0.0, train_step(parts, real, gray, _state(i), torch.bfloat16)) for i in range(3)])
    assert all(math.isfinite(v) for row in rows for v in row.values())
    assert seen_dtypes == [(torch.float32, False)] * 3
    assert parts.opt_d.param_groups[0]["fused"]


def test_compiled_twins_share_the_weights_and_the_penalty_uses_the_eager_critic():
    """torch.compile for the plain passes; R1's double backward through the eager critic (it cannot be
    compiled). One step must update the shared weights exactly as the eager step does, to rounding."""
    from colorbook.training.speed import Speed, accelerate
    objective = DTUObjective(noise_iters=0, smoothing=False, r1_gamma=10.0)
    eager, compiled = _parts(objective), accelerate(_parts(objective), Speed(compile=True))
    assert compiled.fast_critic is not None and compiled.fast_generator is not None
    real, gray = _batch()
    for parts in (eager, compiled):
        train_step(parts, real, gray, _state())
    for a, b in zip(eager.critic.parameters(), compiled.critic.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    for a, b in zip(eager.generator.parameters(), compiled.generator.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_scene_recipes_keep_their_gradient_penalties_of_order_one():
    """The scene recipes' critic (GroupNorm, unit input gradient at initialisation): GP + R1 start at
    order 1-10, not the 1e7 of the paper's BatchNorm critic (recorded in results/critic-sweep)."""
    recipe = get("Q").resolve("quick")
    assert recipe.options["critic_norm"] == "group" and recipe.options["critic_unit_gradient"]
    torch.manual_seed(0)
    parts = get_family("dtu")(recipe, torch.device("cpu"), 10)
    real = torch.rand(4, 3, recipe.image_size, recipe.image_size, generator=torch.Generator().manual_seed(0))
    real, gray = prepare_batch(real, "rgb", parts.generator.color_space)
    with torch.no_grad():
        fake = parts.generator(gray)
    row = read_logs([(0, 0.0, critic_phase(parts, real, fake, gray, _state()))])[0]
    assert 0.1 < row["gp"] + row["r1"] < 100, row
    paper = get_family("dtu")(recipe.with_options(critic_norm="batch", critic_unit_gradient=False),
                              torch.device("cpu"), 10)
    paper_row = read_logs([(0, 0.0, critic_phase(paper, real, fake, gray, _state()))])[0]
    assert paper_row["gp"] + paper_row["r1"] > 3 * (row["gp"] + row["r1"])


def test_fused_adam_takes_over_the_state_of_an_unfused_one():
    """A run resumed with fused Adam from a checkpoint of the unfused optimiser (a CPU run resumed on a GPU)
    continues from the loaded state."""
    from colorbook.training.speed import Speed, accelerate
    parts = _parts(DTUObjective(noise_iters=0, smoothing=False, r1_gamma=0.0))
    real, gray = _batch()
    train_step(parts, real, gray, _state(0))
    saved = parts.opt_g.state_dict()
    resumed = _parts(DTUObjective(noise_iters=0, smoothing=False, r1_gamma=0.0))
    resumed.opt_g.load_state_dict(saved)
    accelerate(resumed, Speed(fused_adam=True))
    train_step(resumed, real, gray, _state(1))
    steps = [s["step"] for s in resumed.opt_g.state.values()]
    assert all(s.dtype == torch.float32 and float(s) == 2.0 for s in steps)
