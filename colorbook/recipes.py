"""Named training recipes: every configuration of the DTU paper's Table 1 (A-X), and the KTH models
(registered from :mod:`colorbook.kth_recipes`).

A :class:`Recipe` is plain data. A *family* (``"dtu"``, ``"kth"``) turns it into models, an objective
and optimisers for the one trainer in :mod:`colorbook.train`. Each recipe has two profiles
(:mod:`colorbook.profile`): ``full`` is the paper's setting; ``quick`` applies the recipe's ``quick``
overrides so that a run takes seconds to minutes on a 2-core CPU.

Choices where the DTU paper is vague or contradicts itself (also in each recipe's ``notes``):

- **Gradient-penalty weight.** The paper writes the penalty with :math:`\\lambda_{recon}`, which would
  make it 100 or 1000; we use WGAN-GP's own weight 10 (Gulrajani et al.) for every GP row.
- **Instance-smoothing schedule.** "decreasing beta from 0.5 to 0 over a number of iterations": we
  decay it over the same iterations as the instance noise (the table's InN column).
- **Dropout (pix2pix) row.** Section 4 says configuration P used dropout; the table labels R as
  "pix2pix" and section 5.6 says "model R ... using dropout". We put dropout on R (two sources
  agree) and give P the gradient penalty without R1, as its table row says.
- **Configuration X.** The table says "4000 iter." and InN 5000, the figure caption says 4000
  iterations: we train 4000 iterations with noise decaying over 5000 (so it never reaches 0).
- **Optimiser.** Only the learning rates are given; we use Adam with betas (0.5, 0.999) (DCGAN,
  pix2pix) for both networks, with the same learning rate.
- **S (only reconstruction).** The lambda column is blank; without an adversarial term the weight only
  rescales the loss, so we use 1.
- **MNIST size.** Digits are padded from 28x28 to 32x32 so that the depth-2 UNet and the ResNet stem
  halve cleanly.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

__all__ = ["Recipe", "register", "get", "all_recipes", "register_family", "get_family", "table",
           "DTU_MNIST", "DTU_SCENES"]


@dataclass(frozen=True)
class Recipe:
    """A named training configuration (plain data; see the module docstring).

    ``options`` holds family-specific settings; ``paper`` the paper's reported numbers and where they
    come from; ``notes`` the choices made where the paper is vague; ``quick`` the overrides of the
    quick profile (keys: top-level field names, or ``"options.KEY"``).
    """

    name: str
    summary: str
    family: str
    dataset: str
    image_size: int
    batch_size: int
    iters: int
    lr: float
    options: Mapping[str, Any] = field(default_factory=dict)
    paper: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    quick: Mapping[str, Any] = field(default_factory=dict)
    table: str = ""
    profile: str = "full"
    seed: int = 0

    def resolve(self, profile: str) -> "Recipe":
        """This recipe in ``profile`` (``"full"`` unchanged, ``"quick"`` with the overrides applied)."""
        from colorbook.profile import check_profile
        check_profile(profile)
        if profile == "full":
            return dataclasses.replace(self, profile="full")
        top: dict[str, Any] = {}
        options = dict(self.options)
        for key, value in self.quick.items():
            if key.startswith("options."):
                options[key[len("options."):]] = value
            elif key in {f.name for f in dataclasses.fields(self)}:
                top[key] = value
            else:
                raise ValueError(f"recipe {self.name}: quick override {key!r} names no field")
        return dataclasses.replace(self, options=options, profile="quick", **top)

    def with_options(self, **options: Any) -> "Recipe":
        """A copy with some options changed (for ablations in the book)."""
        return dataclasses.replace(self, options={**self.options, **options})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (dict(v) if isinstance(v := getattr(self, f.name), Mapping) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


_RECIPES: dict[str, Recipe] = {}
_FAMILIES: dict[str, Callable[..., Any]] = {}


def register(recipe: Recipe) -> Recipe:
    """Add a recipe to the registry (names are case-insensitive)."""
    key = recipe.name.lower()
    if key in _RECIPES:
        raise ValueError(f"a recipe named {recipe.name!r} is already registered")
    _RECIPES[key] = recipe
    return recipe


def get(name: str | Recipe) -> Recipe:
    """The recipe called ``name`` (case-insensitive), with a list of known names if there is none."""
    if isinstance(name, Recipe):
        return name
    try:
        return _RECIPES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(r.name for r in all_recipes())}. "
                         "Run `python -m colorbook recipes` to see what each does.") from None


def all_recipes() -> list[Recipe]:
    return list(_RECIPES.values())


def table(name: str) -> list[Recipe]:
    """The recipes of one paper table: ``"dtu-mnist"``, ``"dtu-scenes"`` or ``"kth"``."""
    rows = [r for r in _RECIPES.values() if r.table == name]
    if not rows:
        raise ValueError(f"unknown table {name!r}: choose one of {', '.join(sorted({r.table for r in _RECIPES.values()}))}")
    return rows


def register_family(name: str, build: Callable[..., Any]) -> None:
    """Register ``build(recipe, device, steps_per_epoch) -> colorbook.train.Components``."""
    _FAMILIES[name] = build


def get_family(name: str) -> Callable[..., Any]:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown recipe family {name!r}; known: {', '.join(_FAMILIES)}") from None


# ---------------------------------------------------------------------------------------------
# The DTU family


def build_dtu(recipe: Recipe, device: torch.device, steps_per_epoch: int):
    """Models, objective and optimisers for a DTU recipe."""
    from colorbook.losses import DTUObjective
    from colorbook.models import ResNetCritic, UNetColorizer
    from colorbook.train import Components

    o = recipe.options
    generator = UNetColorizer(depth=o["depth"], base_channels=o.get("base_channels", 64),
                              max_channels=o.get("max_channels", 512),
                              dropout=0.5 if o.get("dropout") else 0.0,
                              block_norm=o.get("block_norm", True)).to(device)
    objective = DTUObjective(adversarial=o.get("adversarial", True), gp=o.get("gp", False),
                             gp_weight=o.get("gp_weight", 10.0), r1_gamma=o.get("r1_gamma", 0.0),
                             smoothing=o.get("smoothing", False), noise_iters=o.get("noise_iters", 0),
                             smoothing_iters=o.get("smoothing_iters"),
                             recon=o.get("recon", "huber"), recon_weight=o.get("recon_weight", 100.0),
                             huber_delta=o.get("huber_delta", 1.0))
    betas = tuple(o.get("betas", (0.5, 0.999)))
    opt_g = torch.optim.Adam(generator.parameters(), lr=recipe.lr, betas=betas)
    discriminator = opt_d = None
    if objective.uses_discriminator:
        discriminator = ResNetCritic(o.get("critic", "resnet18"), stem=o.get("critic_stem", "standard"),
                                     norm=o.get("critic_norm", "batch")).to(device)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=recipe.lr, betas=betas)
    return Components(generator, discriminator, objective, opt_g, opt_d, schedulers=[])


register_family("dtu", build_dtu)

_DTU_CHOICES = ("GP weight 10 (the paper writes lambda_recon); beta of instance smoothing decays over the "
                "InN iterations; Adam betas (0.5, 0.999); see colorbook.recipes for all choices.")

# name: (gp, recon, recon_weight, r1_gamma, smoothing, noise_iters, paper FID, extra)
DTU_MNIST = {
    "A": (True, "mse", 1, 0, False, 125, 15.784, "baseline: GP, MSE"),
    "B": (True, "mse", 1, 0, False, 1000, 18.010, "baseline with slower noise decay"),
    "C": (True, "mse", 1, 0, True, 1000, 11.790, "B + instance smoothing"),
    "D": (True, "mse", 100, 0, True, 500, 11.001, "C with lambda 100, noise over 500"),
    "E": (True, "huber", 100, 0, True, 500, 10.559, "D with Huber"),
    "F": (True, "huber", 1000, 0, True, 500, 10.635, "E with lambda 1000"),
    "G": (True, "huber", 100, 10, True, 500, 10.573, "E + R1 (gamma 10)"),
    "H": (False, "huber", 100, 10, True, 500, 10.228, "R1 instead of GP: the paper's best MNIST model"),
    "I": (False, "huber", 100, 1, True, 500, 10.550, "H with gamma 1"),
    "J": (False, "huber", 100, 10, False, 500, 10.301, "H without instance smoothing"),
    "K": (None, "huber", 100, 0, False, 0, 17.613, "reconstruction only (no critic)"),
}
DTU_SCENES = {
    "L": (False, "huber", 100, 10, True, 500, 25.579, "configuration H on scenes, depth 7"),
    "M": (False, "huber", 100, 10, True, 500, 38.454, "L, shallow (depth 2)"),
    "N": (False, "mse", 100, 10, True, 500, 25.788, "L with MSE"),
    "O": (False, "huber", 100, 10, False, 500, 26.142, "L without instance smoothing"),
    "P": (True, "huber", 100, 0, True, 500, 27.127, "GP without R1"),
    "Q": (True, "huber", 100, 10, True, 500, 25.283, "GP + R1: the paper's best 1000-iteration scene model"),
    "R": (False, "huber", 100, 10, True, 500, 26.252, "L with pix2pix dropout (50%, first 3 decoder blocks)"),
    "S": (None, "huber", 1, 0, False, 0, 25.296, "reconstruction only (no critic)"),
    "X": (True, "huber", 100, 10, True, 5000, 16.804, "Q trained for 4000 iterations"),
}


def _dtu_recipe(name: str, row: tuple, scenes: bool) -> Recipe:
    gp, recon, recon_weight, r1_gamma, smoothing, noise_iters, fid, summary = row
    adversarial = gp is not None
    options: dict[str, Any] = {
        "depth": (2 if name == "M" else 7) if scenes else 2,
        "critic": "resnet152" if scenes else "resnet18",
        "adversarial": adversarial, "gp": bool(gp), "recon": recon, "recon_weight": float(recon_weight),
        "r1_gamma": float(r1_gamma), "smoothing": smoothing, "noise_iters": noise_iters,
        "dropout": name == "R",
    }
    switches = [s for s, on in (("GP", gp), ("R1 %g" % r1_gamma, r1_gamma), ("InS", smoothing)) if on]
    line = (f"{summary} [{recon}{' x%g' % recon_weight if adversarial else ''}"
            f"{', ' + ', '.join(switches) if switches else ''}{', InN %d' % noise_iters if noise_iters else ''}]")
    if scenes:
        quick = {"iters": 60, "image_size": 64, "batch_size": 8, "options.critic": "resnet10",
                 "options.base_channels": 16, "options.max_channels": 128, "options.depth": min(options["depth"], 6),
                 "options.noise_iters": max(1, round(noise_iters * 60 / 1000)) if noise_iters else 0}
    else:
        quick = {"iters": 120, "batch_size": 16, "options.critic": "resnet10", "options.base_channels": 16,
                 "options.noise_iters": max(1, round(noise_iters * 120 / 1000)) if noise_iters else 0}
    return Recipe(
        name=name, summary=line, family="dtu", dataset="scenes" if scenes else "mnist",
        image_size=128 if scenes else 32, batch_size=32, iters=4000 if name == "X" else 1000,
        lr=1e-4 if scenes else 5e-5, options=options,
        paper={"fid": fid, "source": "DTU Table 1 (FID, pytorch-fid, 10,000 vs 10,000 images)",
               "data": "Places365 athletic field/outdoor" if scenes else "colorized MNIST"},
        notes=_DTU_CHOICES, quick=quick, table="dtu-scenes" if scenes else "dtu-mnist")


for _name, _row in DTU_MNIST.items():
    register(_dtu_recipe(_name, _row, scenes=False))
for _name, _row in DTU_SCENES.items():
    register(_dtu_recipe(_name, _row, scenes=True))

# The KTH recipes live in their own module; importing it registers them.
try:  # pragma: no cover - exercised whenever the module exists
    import colorbook.kth_recipes  # noqa: E402,F401
except ModuleNotFoundError as error:  # the module is optional while it is being written
    if error.name != "colorbook.kth_recipes":
        raise
