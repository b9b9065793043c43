"""Recipes: every configuration of both papers, by name (``python -m colorbook recipes`` lists them).

This package owns the registries and fills them here, explicitly: the DTU Table 1 rows
(:mod:`colorbook.recipes.dtu`) and the KTH models (:mod:`colorbook.recipes.kth`), each with its
family builder. The registry itself is :mod:`colorbook.recipes.registry`.
"""
from __future__ import annotations

from colorbook.recipes import dtu, kth
from colorbook.recipes.registry import (
    FamilyBuilder,
    Recipe,
    all_recipes,
    get,
    get_family,
    register,
    register_family,
    table,
)

__all__ = ["Recipe", "FamilyBuilder", "register", "get", "all_recipes", "register_family", "get_family", "table"]

register_family("dtu", dtu.build_dtu)
register_family("kth", kth.build_kth)
for _recipe in (*dtu.RECIPES, *kth.RECIPES):
    register(_recipe)
