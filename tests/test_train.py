"""The one trainer: outputs, exact resume (device-resident and DataLoader data), divergence stop, recipes."""
import dataclasses
import json

import pytest
import torch

import colorbook.training.loop as loop_module
from colorbook import recipes
from colorbook.core import TrainingDiverged
from colorbook.training.checkpoint import load_checkpoint, load_generator
from colorbook.training.loop import train
from colorbook.training.stream import BatchStream

TINY = {"options.base_channels": 4, "options.critic": "resnet10", "batch_size": 4, "image_size": 16}


def tiny_recipe(name="H", **options):
    base = recipes.get(name).resolve("quick")
    options = {"base_channels": 4, "critic": "resnet10", **options}
    return dataclasses.replace(base.with_options(**options), batch_size=4, image_size=16)


def _weights(path):
    return load_checkpoint(path)["generator"]


def test_train_writes_every_output(tmp_path, tiny_lab):
    metrics = train(tiny_recipe(), tmp_path, iters=4, dataset=tiny_lab(16), eval_dataset=tiny_lab(4, seed=1),
                    progress=False, sample_every=2)
    assert (tmp_path / "checkpoint.pt").exists()
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["iter_000002.png", "iter_000004.png"]
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert {"d_loss", "g_loss", "recon", "r1", "beta", "noise_std"} <= set(rows[0])
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["status"] == "completed" and on_disk["iterations"] == 4 == metrics["iterations"]
    assert {"command", "git_commit", "device", "torch", "date", "wall_time_s"} <= set(on_disk["provenance"])
    assert on_disk["paper"]["fid"] == 10.228
    generator, recipe = load_generator(tmp_path / "checkpoint.pt")
    assert recipe.name == "H" and not generator.training


@pytest.mark.parametrize("dataset_fixture", ["tiny_lab", "tiny_rgb"])
def test_resume_continues_exactly(tmp_path, request, dataset_fixture):
    data_cls = request.getfixturevalue(dataset_fixture)
    recipe = tiny_recipe()
    kwargs = dict(dataset=data_cls(16), eval_dataset=data_cls(4, seed=1), progress=False)
    train(recipe, tmp_path / "straight", iters=6, **kwargs)
    train(recipe, tmp_path / "split", iters=3, **kwargs)
    train(recipe, tmp_path / "split", iters=6, resume=True, **kwargs)
    straight, split = _weights(tmp_path / "straight" / "checkpoint.pt"), _weights(tmp_path / "split" / "checkpoint.pt")
    for key in straight:
        assert torch.equal(straight[key], split[key]), f"{key} differs after resume"
    log_straight = (tmp_path / "straight" / "log.jsonl").read_text().splitlines()
    log_split = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    assert log_straight == log_split


def test_resuming_a_finished_run_keeps_its_record(tmp_path, tiny_lab, monkeypatch):
    kwargs = dict(dataset=tiny_lab(16), eval_dataset=tiny_lab(4, seed=1), progress=False, iters=3)
    first = train(tiny_recipe(), tmp_path, **kwargs)
    files = {name: (tmp_path / name).read_bytes() for name in ("metrics.json", "log.jsonl", "checkpoint.pt")}


    def no_models(*args, **kwargs):
        raise AssertionError("built models for a run that had nothing left to do")
    monkeypatch.setattr(loop_module, "get_family", no_models)
    again = train(tiny_recipe(), tmp_path, resume=True, **kwargs)
    assert again == json.loads(json.dumps(first, default=str))
    assert again["iterations_this_run"] == 3 and again["seconds_per_iteration"] > 0
    for name, content in files.items():
        assert (tmp_path / name).read_bytes() == content, f"{name} was rewritten by a no-op resume"


def test_a_different_seed_gives_different_weights(tmp_path, tiny_lab):
    kwargs = dict(dataset=tiny_lab(16), eval_dataset=tiny_lab(4), progress=False, iters=2)
    train(tiny_recipe(), tmp_path / "a", seed=0, **kwargs)
    train(tiny_recipe(), tmp_path / "b", seed=1, **kwargs)
    a, b = _weights(tmp_path / "a" / "checkpoint.pt"), _weights(tmp_path / "b" / "checkpoint.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_lab):
    recipe = tiny_recipe()
    kwargs = dict(dataset=tiny_lab(16), eval_dataset=tiny_lab(4), progress=False, checkpoint_every=2)
    train(recipe, tmp_path, iters=2, **kwargs)
    good = _weights(tmp_path / "checkpoint.pt")
    poisoned = tiny_lab(16)
    poisoned.images[:] = float("nan")             # every loss becomes NaN at the next step
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(recipe, tmp_path, iters=6, resume=True, **{**kwargs, "dataset": poisoned})
    kept = load_checkpoint(tmp_path / "checkpoint.pt")
    assert kept["iteration"] == 2
    assert all(torch.equal(good[k], kept["generator"][k]) for k in good)
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "diverged"


def test_reconstruction_only_recipe_trains_without_a_critic(tmp_path, tiny_lab):
    metrics = train(tiny_recipe("K"), tmp_path, iters=3, dataset=tiny_lab(16), eval_dataset=tiny_lab(4),
                    progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["critic"] is None
    assert "d_loss" not in metrics["final_losses_mean_last_50"]


def test_training_reduces_the_reconstruction_loss(tmp_path, tiny_lab):
    """A test that can fail: 40 steps of reconstruction-only training must fit a fixed tiny batch better."""
    data = tiny_lab(4)
    data.images[:, 1:] = 0.8       # one constant colour: easy to learn
    recipe = dataclasses.replace(tiny_recipe("K"), lr=1e-2)
    train(recipe, tmp_path, iters=40, dataset=data, eval_dataset=data, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["recon"] < 0.2 * rows[0]["recon"]


def test_batch_stream_is_a_function_of_the_step(tiny_lab):
    stream = BatchStream(tiny_lab(10), 3, torch.device("cpu"), seed=5)
    assert stream.steps_per_epoch == 3
    first = [labels for _, labels in zip(range(7), (b for _, b in stream.batches(0)))]
    later = next(b for _, b in stream.batches(4))
    assert torch.equal(first[4], later)
    epoch0 = torch.cat([stream._indices(s) for s in range(3)])
    assert len(set(epoch0.tolist())) == 9      # no repeats inside an epoch; the last partial batch dropped
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchStream(tiny_lab(2), 3, torch.device("cpu"))


def test_every_table_row_is_a_recipe_with_paper_fid_and_both_profiles():
    names = {r.name for r in recipes.all_recipes()}
    assert set("ABCDEFGHIJK") | set("LMNOPQRSX") <= names
    for name in "ABCDEFGHIJKLMNOPQRSX":
        recipe = recipes.get(name)
        assert recipe.paper["fid"] > 0 and "Table 1" in recipe.paper["source"]
        quick = recipe.resolve("quick")
        assert quick.iters < recipe.iters and quick.profile == "quick"
        assert recipe.batch_size == 32
    assert recipes.get("h").name == "H"
    assert recipes.get("H").lr == 2e-4 and recipes.get("L").lr == 1e-4  # MNIST: 4x the paper's (measured)
    # every adversarial row's critic is the rescaled GroupNorm one; MNIST's R1 is the paper's gamma x 0.1
    from colorbook.recipes.dtu import MNIST_R1_SCALE
    for name, paper_gamma in (("H", 10), ("I", 1), ("G", 10), ("L", 10), ("Q", 10)):
        options = recipes.get(name).options
        assert options["critic_norm"] == "group" and options["critic_unit_gradient"] is True
        scale = 1.0 if name in "LQ" else MNIST_R1_SCALE
        assert options["r1_gamma"] == pytest.approx(paper_gamma * scale)
    assert "critic_norm" not in recipes.get("K").options
    assert recipes.get("L").options["depth"] == 7 and recipes.get("M").options["depth"] == 2
    assert recipes.get("R").options["dropout"] and not recipes.get("P").options["dropout"]
    assert recipes.get("K").options["adversarial"] is False
    assert recipes.get("X").iters == 4000
    assert recipes.get("L").options["critic"] == "resnet152" and recipes.get("H").options["critic"] == "resnet18"
    with pytest.raises(ValueError, match="known recipes"):
        recipes.get("Z9")
    with pytest.raises(ValueError, match="profile"):
        recipes.get("H").resolve("medium")


def test_profile_switch(monkeypatch):
    from colorbook.profile import current_profile
    monkeypatch.setenv("COLORBOOK_PROFILE", "full")
    assert current_profile() == "full"
    assert current_profile("quick") == "quick"
    monkeypatch.setenv("COLORBOOK_PROFILE", "fast")
    with pytest.raises(ValueError, match="COLORBOOK_PROFILE"):
        current_profile()
    monkeypatch.delenv("COLORBOOK_PROFILE")
    assert current_profile() == ("full" if torch.cuda.is_available() else "quick")


def test_generator_average_follows_the_steps_with_a_growing_half_life():
    from colorbook.training.average import GeneratorAverage, average_decay

    assert average_decay(0.05, 1) < 1e-5  # the first step: the average becomes the generator
    assert average_decay(0.05, 1000) == pytest.approx(0.5 ** (1 / 50))  # half-life 50 steps at step 1,000
    with pytest.raises(ValueError, match="g_ema"):
        average_decay(0.0, 10)
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    average = GeneratorAverage(net, 0.5)
    start = [p.clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].running_mean.fill_(3.0)
    average.update(net, 2)  # half-life 1 step: halfway from the old weights to the new
    for old, new, mine in zip(start, net.parameters(), average.module.parameters()):
        assert torch.allclose(mine, (old + new) / 2)
    assert torch.equal(average.module[1].running_mean, net[1].running_mean)  # buffers are copied
    assert set(average.state_dict()) == set(net.state_dict())


def test_a_run_with_a_generator_average_resumes_exactly_and_is_evaluated_with_it(tmp_path, tiny_lab, monkeypatch):
    from colorbook.training.average import GeneratorAverage

    steps, update = [], GeneratorAverage.update
    monkeypatch.setattr(GeneratorAverage, "update", lambda self, g, done: (steps.append(done), update(self, g, done)))
    recipe = tiny_recipe(g_ema=0.3)
    kwargs = dict(dataset=tiny_lab(16), eval_dataset=tiny_lab(4, seed=1), progress=False)
    train(recipe, tmp_path / "straight", iters=6, **kwargs)
    assert steps == [1, 2, 3, 4, 5, 6], "the average is updated once after every generator step"
    train(recipe, tmp_path / "split", iters=3, **kwargs)
    train(recipe, tmp_path / "split", iters=6, resume=True, **kwargs)
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    split = load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    for part in ("generator", "generator_ema"):
        for key in straight[part]:
            assert torch.equal(straight[part][key], split[part][key]), f"{part}.{key} differs after resume"
    differs = [k for k in straight["generator"] if not torch.equal(straight["generator"][k], straight["generator_ema"][k])]
    assert differs, "the average equals the last weights: it was not averaged"
    averaged, _ = load_generator(tmp_path / "straight" / "checkpoint.pt")
    last, _ = load_generator(tmp_path / "straight" / "checkpoint.pt", averaged=False)
    for key, value in averaged.state_dict().items():
        assert torch.equal(value, straight["generator_ema"][key])
        assert torch.equal(last.state_dict()[key], straight["generator"][key])
    # without the option there is no average, and the generator is the last step's
    train(tiny_recipe(), tmp_path / "plain", iters=2, **kwargs)
    assert load_checkpoint(tmp_path / "plain" / "checkpoint.pt")["generator_ema"] is None
