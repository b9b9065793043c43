"""The KTH recipes (``table="kth"``) and the ``"kth"`` family builder (registered by
:mod:`colorbook.recipes`). Introduced in chapters 11-12 of the book.

============================  =========  ===========  =============  ==========================
recipe                        generator  discrim.     aggregation    optimisers (G / D)
============================  =========  ===========  =============  ==========================
``v1``                        V1         scalar (V1)  -              SGD 2e-4 / Adam 2e-4
``v2``                        V2         scalar (V2)  -              Adam 2e-4 / SGD 4e-4 sched.
``v3``                        V3         scalar (V3)  -              Adam 2e-4 / Adam 2e-4
``avg-patchgan``              V2         PatchGAN     mean           Adam 2e-4 / SGD 4e-4 sched.
``min-patchgan``              V2         PatchGAN     mean -> min    Adam 2e-4 / SGD 4e-4 sched.
``min-patchgan-cond``         V2         PatchGAN+g   mean -> min    as min-patchgan (ablation)
``avg-patchgan-l1-10``        V2         PatchGAN     mean           as avg-patchgan, L1 weight 10 (ablation)
``v2-l1``                     V2         none         -              Adam 2e-4 / - (ablation)
============================  =========  ===========  =============  ==========================

"SGD 4e-4 sched." is SGD with momentum 0.9 and weight decay 1e-4 whose learning rate halves every
5 epochs (a :class:`torch.optim.lr_scheduler.LambdaLR` stepped once per iteration). Adam uses
betas (0.5, 0.999). All recipes: batch 56, 256x256, BCE with one-sided label smoothing
(real labels ~ U[0.8, 1]), L1 weight 100 on [0, 1] RGB.

Which epoch? The paper's epoch is 500 iterations of 56 images (28,000 frames). In the ``full``
profile the schedule (the Min-PatchGAN switch and the learning-rate halving) counts such epochs
(``options.schedule_epoch_images = 28000``), so that it keeps the paper's timing on any data set;
on a 783-image folder data epochs would be 14 iterations long and the learning rate would halve
to nothing. In the ``quick`` profile (``schedule_epoch_images = None``) it counts epochs of the
data set in use (iterations x batch / data-set size), and the switch comes early enough
(``switch_epoch`` 0.25) to happen inside a CPU run of a few dozen iterations.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from colorbook.core import Components
from colorbook.losses.kth import KTHObjective
from colorbook.models.kth import make_discriminator, make_generator
from colorbook.recipes.registry import Recipe

__all__ = ["build_kth", "HalvingSchedule", "RECIPES", "PAPER_EPOCH_IMAGES"]

PAPER_EPOCH_IMAGES = 28_000  # the paper's training set: one epoch = 500 iterations of 56


class HalvingSchedule:
    """Learning-rate factor ``0.5 ** floor(iteration / (every_epochs * iterations_per_epoch))``, for
    :class:`torch.optim.lr_scheduler.LambdaLR` (a class, not a lambda, so that checkpoints keep it)."""

    def __init__(self, every_epochs: float, iterations_per_epoch: float) -> None:
        if every_epochs <= 0 or iterations_per_epoch <= 0:
            raise ValueError("every_epochs and iterations_per_epoch must be > 0")
        self.every_epochs = float(every_epochs)
        self.iterations_per_epoch = float(iterations_per_epoch)

    def __call__(self, iteration: int) -> float:
        return 0.5 ** math.floor(iteration / (self.every_epochs * self.iterations_per_epoch) + 1e-9)


def _optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, options: dict[str, Any],
               weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(options.get("betas", (0.5, 0.999))),
                                weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=options.get("momentum", 0.9), weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose 'adam' or 'sgd'")


def build_kth(recipe: Recipe, device: torch.device, steps_per_epoch: int, *, with_critic: bool = True) -> Components:
    """Models, objective, optimisers and D's learning-rate schedule for a KTH recipe.

    ``steps_per_epoch``: iterations per epoch of the data set in use (used by the schedule unless
    ``options.schedule_epoch_images`` fixes the epoch length). Returns
    :class:`colorbook.core.Components`.
    """
    o = dict(recipe.options)
    generator = make_generator(o["generator"]).to(device)
    epoch_images = o.get("schedule_epoch_images")
    iterations_per_epoch = epoch_images / recipe.batch_size if epoch_images else max(1, steps_per_epoch)
    objective = KTHObjective(aggregation=o.get("aggregation", "mean"), switch_epoch=o.get("switch_epoch", 5.0),
                             l1_weight=o.get("l1_weight", 100.0),
                             label_smoothing=tuple(o.get("label_smoothing", (0.8, 1.0))),
                             iterations_per_epoch=iterations_per_epoch if epoch_images else None,
                             adversarial=o.get("adversarial", True))
    opt_g = _optimizer(o.get("g_optimizer", "adam"), generator.parameters(), recipe.lr, o,
                       weight_decay=o.get("g_weight_decay", 0.0))
    if not with_critic or not objective.uses_critic:
        return Components(generator, None, objective, opt_g, None)
    discriminator = make_discriminator(o["discriminator"], variant=o.get("discriminator_variant", o["generator"]),
                                       image_size=recipe.image_size,
                                       condition_on_gray=bool(o.get("condition_on_gray", False))).to(device)
    opt_d = _optimizer(o.get("d_optimizer", "sgd"), discriminator.parameters(), o.get("d_lr", recipe.lr), o,
                       weight_decay=o.get("d_weight_decay", 0.0))
    schedulers = []
    halving = o.get("d_lr_halving_epochs")
    if halving:
        schedulers.append(torch.optim.lr_scheduler.LambdaLR(opt_d, HalvingSchedule(halving, iterations_per_epoch)))
    return Components(generator, discriminator, objective, opt_g, opt_d, schedulers=schedulers)


_PAPER = {"source": "KTH (Hotti et al. 2019), Table 1 and sections 6-7",
          "metric": None,
          "reported": "no numeric metric: image quality judged by eye (Figures 5-11); PatchGANs converge "
                      "faster than the cGANs, Min-PatchGAN gives the best colours",
          "data": "36,000 Simpsons frames (28,000 / 7,000 / 1,000), 256x256"}

_COMMON_NOTES = (
    "Architectures from the authors' public code (the paper gives kernel sizes only). L1 weight 100 on "
    "[0,1] RGB = the paper's 0.392 on 0..255. One-sided label smoothing U[0.8,1] per sample. PyTorch default "
    "initialisation (the authors set none). Full profile: epochs of 28,000 images (the paper's) drive the "
    "schedule whatever the data set; quick profile: epochs of the data set in use. Unless "
    "options.condition_on_gray is set, the discriminator sees only the RGB image, as in the authors' code.")

# Settings of V2 and both PatchGANs (Table 1 rows "ADAM / SGD w/ decay / 4e-4, sched." and the code).
_V2_OPTIMISERS = {"g_optimizer": "adam", "d_optimizer": "sgd", "d_lr": 4e-4, "betas": (0.5, 0.999),
                  "momentum": 0.9, "d_weight_decay": 1e-4, "d_lr_halving_epochs": 5}
_COMMON_OPTIONS = {"l1_weight": 100.0, "label_smoothing": (0.8, 1.0), "condition_on_gray": False,
                   "schedule_epoch_images": PAPER_EPOCH_IMAGES, "aggregation": "mean", "switch_epoch": 5.0}
# Quick: 64x64, batch 8, a few dozen iterations; epochs of the data in use (448 generated train
# images -> 56 iterations per epoch; the 783-image train split of a 1007-image folder -> 97).
_QUICK = {"image_size": 64, "batch_size": 8, "iters": 40, "options.schedule_epoch_images": None}


def _recipe(name: str, summary: str, iters: int, options: dict[str, Any], notes: str,
            quick: dict[str, Any] | None = None) -> Recipe:
    return Recipe(name=name, summary=summary, family="kth", dataset="cartoons", image_size=256, batch_size=56,
                  iters=iters, lr=2e-4, options={**_COMMON_OPTIONS, **options}, paper=dict(_PAPER),
                  notes=f"{notes} {_COMMON_NOTES}", quick={**_QUICK, **(quick or {})}, table="kth")


# 10 epochs for V1-V3 (the paper's Experiment 1), 15 for the PatchGANs (Figure 11 shows epochs 10 and
# 15 of Min-PatchGAN; both PatchGANs get the same budget so that they compare).
#: every KTH recipe (registered by :mod:`colorbook.recipes`)
RECIPES: list[Recipe] = [
    _recipe("v1", "KTH network 1: 3x3 kernels, no skips, scalar D", 5000,
            {"generator": "v1", "discriminator": "scalar", "discriminator_variant": "v1",
             "g_optimizer": "sgd", "d_optimizer": "adam", "d_lr": 2e-4, "betas": (0.5, 0.999), "momentum": 0.9,
             "d_weight_decay": 0.0, "d_lr_halving_epochs": None},
            "Optimisers follow Table 1 (G: SGD momentum 0.9, D: Adam, both 2e-4, no schedule); the authors' "
            "V2/PatchGAN code uses Adam for G and SGD for D, but Table 1 lists V1 otherwise. "
            "V1 D kernels 3,3,3,3,3,5,1,4 (section 6.2). 10 epochs (Experiment 1)."),
    _recipe("v2", "KTH network 2: pyramid kernels + skips, scalar D (Figure 2)", 5000,
            {"generator": "v2", "discriminator": "scalar", "discriminator_variant": "v2", **_V2_OPTIMISERS},
            "G Adam 2e-4, D SGD 4e-4 (momentum 0.9, weight decay 1e-4) halved every 5 epochs, as the authors' "
            "code; the text's 'same learning rate in G and D' is not what the code does (Table 1 gives one rate "
            "per network). 10 epochs "
            "(Experiment 1; Experiment 2 trains 60)."),
    _recipe("v3", "KTH network 3: pyramid-8 kernels, 80-640 channels, no skips, scalar D", 5000,
            {"generator": "v3", "discriminator": "scalar", "discriminator_variant": "v3",
             "g_optimizer": "adam", "d_optimizer": "adam", "d_lr": 2e-4, "betas": (0.5, 0.999),
             "momentum": 0.9, "d_weight_decay": 0.0, "d_lr_halving_epochs": None},
            "Optimisers follow Table 1 (Adam for both, 2e-4, no schedule). V3 paddings are ours (exact halving; "
            "the authors' V3 code returned 259x259 images). 10 epochs (Experiment 1)."),
    _recipe("avg-patchgan", "Avg-PatchGAN: V2 generator, patch D (32x32 map at 256 px), mean of patches", 7500,
            {"generator": "v2", "discriminator": "patch", "aggregation": "mean", **_V2_OPTIMISERS},
            "Patch probabilities averaged (Isola et al.). 15 epochs (the paper's Experiment 3 ran 60)."),
    _recipe("min-patchgan", "Min-PatchGAN: mean of patches, then softmin/softmax after switch_epoch", 7500,
            {"generator": "v2", "discriminator": "patch", "aggregation": "min", "switch_epoch": 5.0,
             **_V2_OPTIMISERS},
            "Switch at epoch 5 as the paper's text says (its code switches at 22; set options.switch_epoch). "
            "After the switch: softmin (alpha -1) on D's real pass and on G's pass, softmax (alpha +1) on D's "
            "fake pass, as in the authors' code. 15 epochs (Figure 11).",
            quick={"options.switch_epoch": 0.25}),
    _recipe("min-patchgan-cond", "Ablation: Min-PatchGAN whose D also sees the gray input (pix2pix style)", 7500,
            {"generator": "v2", "discriminator": "patch", "aggregation": "min", "switch_epoch": 5.0,
             "condition_on_gray": True, **_V2_OPTIMISERS},
            "Not in the paper: the PatchGAN reads RGB + gray (4 channels), so it can judge whether colours fit "
            "the input, as pix2pix's conditional discriminator does. Otherwise as min-patchgan.",
            quick={"options.switch_epoch": 0.25}),
    _recipe("avg-patchgan-l1-10", "Ablation: Avg-PatchGAN with a 10x smaller L1 weight (10)", 7500,
            {"generator": "v2", "discriminator": "patch", "aggregation": "mean", **_V2_OPTIMISERS,
             "l1_weight": 10.0},
            "Not in the paper: Avg-PatchGAN with L1 weight 10 instead of 100 (0.039 on 0..255), so that the "
            "discriminator's BCE has a larger share of the generator's loss. Otherwise as avg-patchgan."),
    _recipe("v2-l1", "Ablation: the V2 generator trained with L1 alone (no discriminator)", 5000,
            {"generator": "v2", "discriminator": "scalar", "adversarial": False, **_V2_OPTIMISERS},
            "Not in the paper: V2's generator and optimiser with the L1 term only, the KTH counterpart of "
            "DTU's configuration K, so that what the discriminator adds can be measured. 10 epochs, as v2."),
]
