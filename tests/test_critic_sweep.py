"""tools/critic_sweep.py: a variant means the same critic whatever the base recipe's defaults."""
import importlib.util
from pathlib import Path

import pytest
import torch

from colorbook.recipes import get, get_family

_spec = importlib.util.spec_from_file_location(
    "critic_sweep", Path(__file__).resolve().parent.parent / "tools" / "critic_sweep.py")
critic_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(critic_sweep)


@pytest.mark.parametrize("base", ["H", "Q"])
def test_the_paper_variant_builds_the_papers_critic_on_any_base(base):
    """The recipes' critic is GroupNorm with unit input gradient (and R1 0.1 on MNIST): the `paper`
    variant must switch all of that off, not inherit it."""
    recipe = get(base).resolve("quick").with_options(**critic_sweep.VARIANTS["paper"])
    assert recipe.options["r1_gamma"] == 10.0 and recipe.options["critic_norm"] == "batch"
    torch.manual_seed(0)
    critic = get_family("dtu")(recipe, torch.device("cpu"), 1).critic
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    unit = get(base).resolve("quick").with_options(**critic_sweep.VARIANTS["batch-unit"])
    torch.manual_seed(0)
    scaled = get_family("dtu")(unit, torch.device("cpu"), 1).critic
    size = recipe.image_size
    norms = [critic_sweep.input_gradient_norm(c, size, torch.device("cpu")) for c in (critic, scaled)]
    assert norms[1] == pytest.approx(1.0, rel=0.2)
    assert abs(norms[0] - 1.0) > 0.3, "the paper's critic is not rescaled to a unit input gradient"


def test_every_variant_names_its_r1_weight():
    for name, options in critic_sweep.VARIANTS.items():
        if name != "K":
            assert "r1_gamma" in options and "critic_norm" in options, name
