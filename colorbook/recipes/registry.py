"""The recipe registry: the :class:`Recipe` dataclass and the registries of recipes and families.

A :class:`Recipe` is plain data. A *family* (``"dtu"``, ``"kth"``) turns it into
:class:`colorbook.core.Components` for the one trainer. Each recipe has two profiles
(:mod:`colorbook.profile`): ``full`` is the paper's setting; ``quick`` applies the recipe's ``quick``
overrides so that a run takes seconds to minutes on a 2-core CPU. Introduced in chapter 4 of the book.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


from colorbook.core import Components
from colorbook.profile import check_profile

__all__ = ["Recipe", "register", "get", "all_recipes", "register_family", "get_family", "table", "FamilyBuilder"]

#: ``build(recipe, device, steps_per_epoch, *, with_critic=True) -> Components``; ``with_critic=False``
#: builds the generator side only (loading a generator must not build, e.g., a ResNet-152 critic)
FamilyBuilder = Callable[..., Components]

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
_FAMILIES: dict[str, FamilyBuilder] = {}


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


def register_family(name: str, build: FamilyBuilder) -> None:
    """Register ``build(recipe, device, steps_per_epoch) -> colorbook.core.Components``."""
    _FAMILIES[name] = build


def get_family(name: str) -> FamilyBuilder:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown recipe family {name!r}; known: {', '.join(_FAMILIES)}") from None
