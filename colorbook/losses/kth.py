"""The KTH loss: BCE with one-sided label smoothing plus L1, and the patch aggregation of
(Min-)PatchGAN (mean, softmin, softmax). The networks are in :mod:`colorbook.models.kth`.

Introduced in chapters 11-12 of the book (book/11-kth-models, book/12-patchgan). Facts taken from the
authors' public code where the paper is silent: the discriminator of the PatchGAN sees only the RGB
image, the L1 weight ``100/255`` on 0..255 pixel values (= 100 on 0..1 values: the paper's 0.392), and
the softmin/softmax passes (softmin on the discriminator's real pass and the generator's pass, softmax
on the discriminator's fake pass).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "aggregate_patches",
    "patch_aggregation_mode",
    "AGGREGATION_MODES",
    "KTHObjective",
]

AGGREGATION_MODES = ("mean", "softmin", "softmax")
_EPS = 1e-6  # probabilities are clamped to [eps, 1 - eps] before any log


def aggregate_patches(
    p: Tensor, mode: str = "mean", alpha: float | None = None, eps: float = _EPS
) -> Tensor:
    """One probability per image from a map of patch probabilities.

    ``p``: ``(B, 1, h, w)``, ``(B, h, w)``, ``(B, N)`` or ``(B,)`` probabilities in
    ``[0, 1]`` (a ``(B,)`` input is returned clamped: a scalar discriminator has nothing
    to aggregate). Returns ``(B,)`` in ``[eps, 1 - eps]``.

    - ``"mean"``: the plain average of the patch probabilities (Avg-PatchGAN, Isola et
      al.).
    - ``"softmin"`` / ``"softmax"``: the paper's eq. 3 with ``alpha = -1`` / ``+1``:
      weights ``w = softmax(alpha * log p)`` over the patches (``w_i = p_i^alpha / sum_j
      p_j^alpha``) and result ``exp(sum_i w_i log p_i)``, a weighted geometric mean
      pulled towards the least (softmin) or most (softmax) real-looking patch. ``alpha``
      overrides the sign/sharpness (larger ``|alpha|`` comes closer to the hard
      min/max).

    ``p`` is clamped to ``[eps, 1 - eps]`` first so that ``log`` stays finite; gradients
    flow to every patch (through the weights and the logs).
    """
    if mode not in AGGREGATION_MODES:
        raise ValueError(
            f"unknown aggregation mode {mode!r}: "
            f"choose one of {', '.join(AGGREGATION_MODES)}"
        )
    if not isinstance(p, Tensor) or p.dim() < 1:
        raise ValueError("p must be a tensor of shape (B, ...) of probabilities")
    p = p.clamp(eps, 1.0 - eps)
    if p.dim() == 1:
        return p
    flat = p.reshape(p.shape[0], -1)
    if mode == "mean":
        return flat.mean(dim=1)
    if alpha is None:
        alpha = -1.0 if mode == "softmin" else 1.0
    log_p = flat.log()
    weights = torch.softmax(alpha * log_p, dim=1)
    return torch.exp((weights * log_p).sum(dim=1))


# The pass names of one training step, and which way the aggregation leans on each once the
# Min-PatchGAN switch has happened (as in the authors' code).
_MIN_PATCHGAN_MODES = {"d_real": "softmin", "d_fake": "softmax", "g": "softmin"}


def patch_aggregation_mode(
    aggregation: str, epoch: float, switch_epoch: float, pass_name: str
) -> str:
    """The Min-PatchGAN schedule: which :func:`aggregate_patches` mode a pass uses.

    ``aggregation="mean"`` (Avg-PatchGAN): always ``"mean"``. ``aggregation="min"``
    (Min-PatchGAN): ``"mean"`` while ``epoch < switch_epoch``, then ``"softmin"`` for the
    discriminator's real pass (``pass_name="d_real"``) and the generator's pass (``"g"``), and
    ``"softmax"`` for the discriminator's fake pass (``"d_fake"``): each side is judged by its
    worst patch. ``epoch`` is fractional (iterations * batch / data set size).
    """
    if pass_name not in _MIN_PATCHGAN_MODES:
        raise ValueError(
            f"unknown pass {pass_name!r}: choose one of {', '.join(_MIN_PATCHGAN_MODES)}"
        )
    if aggregation == "mean":
        return "mean"
    if aggregation != "min":
        raise ValueError(
            f"unknown aggregation {aggregation!r}: choose 'mean' (Avg-PatchGAN) or 'min' (Min-PatchGAN)"
        )
    return _MIN_PATCHGAN_MODES[pass_name] if epoch >= switch_epoch else "mean"


# ---------------------------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------------------------


def _bce(p: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy on probabilities, in float32 and autocast-safe (``p`` already clamped)."""
    p, target = p.float(), target.float()
    return -(target * p.log() + (1.0 - target) * (1.0 - p).log()).mean()


class KTHObjective:
    """The KTH loss: BCE GAN loss with one-sided label smoothing, L1 to the ground truth,
    and patch aggregation (mean, or Min-PatchGAN's softmin/softmax after ``switch_epoch``).

    - Discriminator: ``BCE(agg(D(real)), u) + BCE(agg(D(fake)), 0)`` with ``u ~ U[lo, hi]`` per
      sample (``label_smoothing=(0.8, 1.0)``; one-sided: fake labels stay 0).
    - Generator: ``BCE(agg(D(fake)), 1) + l1_weight * mean|fake - real|`` on ``[0, 1]`` RGB
      (``l1_weight=100`` is the paper's 0.392 = 100/255 on 0..255 values); with
      ``adversarial=False`` (an ablation, not in the paper) only the L1 term, and no discriminator.

    ``agg`` is the identity for a scalar discriminator's ``(B,)`` output; for a patch map it is
    :func:`aggregate_patches` with the mode from :func:`patch_aggregation_mode`.

    The epoch that decides the switch is ``state.epoch`` (iterations x batch / data-set size), or
    ``state.iteration / iterations_per_epoch`` when ``iterations_per_epoch`` is given (the recipes'
    full profile counts the paper's epochs of 28,000 images whatever the data set; see
    :mod:`colorbook.recipes.kth`).

    Logs (floats): ``d_loss, d_loss_real, d_loss_fake, d_real, d_fake, d_real_label`` /
    ``g_loss, g_adv, g_l1, d_fake_g``, ``schedule_epoch``, and ``aggregation_softmin`` (1.0 once the
    softmin/softmax aggregation is in force, else 0.0). The label-smoothing noise comes from
    ``state.rng``.
    """

    has_penalty = False

    def __init__(
        self,
        aggregation: str = "mean",
        switch_epoch: float = 5.0,
        l1_weight: float = 100.0,
        label_smoothing: tuple[float, float] = (0.8, 1.0),
        alpha: float = 1.0,
        iterations_per_epoch: float | None = None,
        adversarial: bool = True,
    ) -> None:
        patch_aggregation_mode(
            aggregation, 0.0, switch_epoch, "g"
        )  # validates `aggregation`
        low, high = label_smoothing
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                f"label_smoothing must be (low, high) with 0 <= low <= high <= 1, got {label_smoothing}"
            )
        if alpha <= 0:
            raise ValueError(
                "alpha is the sharpness of softmin/softmax and must be > 0 (its sign is set per pass)"
            )
        self.aggregation = aggregation
        self.switch_epoch = float(switch_epoch)
        self.l1_weight = float(l1_weight)
        self.label_smoothing = (float(low), float(high))
        self.alpha = float(alpha)
        if iterations_per_epoch is not None and iterations_per_epoch <= 0:
            raise ValueError(
                f"iterations_per_epoch must be > 0, got {iterations_per_epoch}"
            )
        self.iterations_per_epoch = iterations_per_epoch
        self.adversarial = bool(adversarial)

    @property
    def uses_critic(self) -> bool:
        """False for the L1-only ablation (``adversarial=False``): no discriminator is built or trained."""
        return self.adversarial

    def epoch(self, state) -> float:
        """The epoch that drives the schedule (see the class docstring)."""
        if self.iterations_per_epoch is None:
            return float(state.epoch)
        return state.iteration / self.iterations_per_epoch

    def _aggregate(self, p: Tensor, state, pass_name: str) -> Tensor:
        mode = patch_aggregation_mode(
            self.aggregation, self.epoch(state), self.switch_epoch, pass_name
        )
        alpha = (
            None
            if mode == "mean"
            else (-self.alpha if mode == "softmin" else self.alpha)
        )
        return aggregate_patches(p.float(), mode, alpha)

    def switched(self, state) -> bool:
        """True once Min-PatchGAN's softmin/softmax aggregation is in force."""
        return self.aggregation == "min" and self.epoch(state) >= self.switch_epoch

    def critic_loss(
        self, D: nn.Module, real: Tensor, fake: Tensor, gray: Tensor, state
    ) -> tuple[Tensor, dict]:
        p_real = self._aggregate(D(real, gray), state, "d_real")
        p_fake = self._aggregate(D(fake, gray), state, "d_fake")
        low, high = self.label_smoothing
        noise = torch.rand(
            p_real.shape[0], generator=state.rng, device=state.rng.device
        )
        real_labels = (low + (high - low) * noise).to(p_real.device)
        loss_real = _bce(p_real, real_labels)
        loss_fake = _bce(p_fake, torch.zeros_like(p_fake))
        loss = loss_real + loss_fake
        logs = {
            "d_loss_real": loss_real.detach(),
            "d_loss_fake": loss_fake.detach(),
            "d_real": p_real.detach().mean(),
            "d_fake": p_fake.detach().mean(),
            "d_real_label": real_labels.mean(),
        }
        logs.update(
            schedule_epoch=self.epoch(state),
            aggregation_softmin=float(self.switched(state)),
        )
        return loss, logs

    def critic_penalty(
        self, D: nn.Module, real: Tensor, fake: Tensor, gray: Tensor, state
    ) -> tuple[None, dict]:
        """The KTH discriminators are not gradient-penalised."""
        return None, {}

    def generator_loss(
        self, D: nn.Module, real: Tensor, fake: Tensor, gray: Tensor, state
    ) -> tuple[Tensor, dict]:
        l1 = (fake.float() - real.float()).abs().mean()
        if not self.adversarial:  # the L1-only ablation: no discriminator (D is None)
            return self.l1_weight * l1, {"g_l1": l1.detach()}
        p_fake = self._aggregate(D(fake, gray), state, "g")
        adversarial = _bce(p_fake, torch.ones_like(p_fake))
        loss = adversarial + self.l1_weight * l1
        logs = {
            "g_adv": adversarial.detach(),
            "g_l1": l1.detach(),
            "d_fake_g": p_fake.detach().mean(),
        }
        logs["aggregation_softmin"] = float(self.switched(state))
        return loss, logs
