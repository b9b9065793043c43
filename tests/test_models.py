"""The DTU UNet and ResNet critic: shapes, the L pass-through, padding, dropout, init, errors."""
import pytest
import torch

from colorbook.models.common import count_parameters, init_normal
from colorbook.models.critic import CRITIC_ARCHS, ResNetCritic
from colorbook.models.unet import UNetColorizer


@pytest.mark.parametrize("depth,size", [(2, 32), (3, 32), (7, 128)])
def test_unet_output_shape_range_and_L_passthrough(depth, size):
    model = UNetColorizer(depth=depth, base_channels=8)
    gray = torch.rand(2, 1, size, size)
    out = model(gray)
    assert out.shape == (2, 3, size, size)
    assert torch.equal(out[:, :1], gray), "channel 0 must be the input L, unchanged"
    assert out[:, 1:].min() >= 0 and out[:, 1:].max() <= 1


@pytest.mark.parametrize("output", ["sigmoid", "clamp", "clamp-st"])
def test_unet_outputs_stay_in_range_and_only_the_clamp_reaches_its_ends(output):
    """The colorized-MNIST code puts one of a*, b* on 0 or 1: the sigmoid never gets there (and its
    slope vanishes on the way), the clamp reaches both ends with slope 1 inside."""
    model = UNetColorizer(depth=2, base_channels=8, output=output)
    with torch.no_grad():
        model.head.bias.copy_(torch.tensor([8.0, -8.0]))  # far past either end
    gray = torch.rand(2, 1, 32, 32)
    ab = model(gray)[:, 1:]
    assert ab.min() >= 0 and ab.max() <= 1
    reaches_ends = bool((ab[:, 0] == 1).all() and (ab[:, 1] == 0).all())
    assert reaches_ends == output.startswith("clamp")
    (beyond,) = torch.autograd.grad(ab.sum(), model.head.bias)  # past the ends: only straight-through passes
    per_pixel = beyond / (2 * 32 * 32)  # sigmoid'(8) = 3.4e-4; the clamp passes nothing; straight-through 1
    if output == "sigmoid":
        assert bool(((per_pixel > 0) & (per_pixel < 1e-3)).all()), per_pixel
    else:
        assert torch.allclose(per_pixel, torch.full((2,), 1.0 if output == "clamp-st" else 0.0)), per_pixel
    with torch.no_grad():  # constant logits 0.4: slope 1 for the clamp, sigmoid'(0.4) = 0.240
        model.head.weight.zero_()
        model.head.bias.fill_(0.4)
    (slope,) = torch.autograd.grad(model(gray)[:, 1:].sum(), model.head.bias)  # summed over 2 x 32 x 32
    expected = 1.0 if output.startswith("clamp") else float(torch.sigmoid(torch.tensor(0.4)) * torch.sigmoid(torch.tensor(-0.4)))
    assert torch.allclose(slope / (2 * 32 * 32), torch.full((2,), expected), atol=1e-5)


def test_unet_rejects_an_unknown_output():
    with pytest.raises(ValueError, match="sigmoid, clamp, clamp-st"):
        UNetColorizer(output="tanh")


def test_unet_pads_sizes_the_depth_cannot_halve_and_crops_back():
    model = UNetColorizer(depth=3, base_channels=8).eval()  # eval: BatchNorm of one 1x1 image needs running stats
    for shape in [(30, 33), (5, 7), (1, 1)]:
        out = model(torch.rand(1, 1, *shape))
        assert out.shape[-2:] == shape


def test_unet_is_local_enough_that_padding_changes_nothing_inside():
    """A multiple-of-8 image gives the same output whether or not it is padded: the pad is a no-op there."""
    torch.manual_seed(0)
    model = UNetColorizer(depth=3, base_channels=8).eval()
    gray = torch.rand(1, 1, 32, 32)
    assert model.size_multiple == 8
    assert torch.allclose(model(gray), model(gray.clone()))


def test_unet_rejects_wrong_channel_count_with_a_clear_message():
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        UNetColorizer(depth=2)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="depth"):
        UNetColorizer(depth=0)


def test_dropout_only_in_first_three_decoder_blocks():
    model = UNetColorizer(depth=5, base_channels=4, dropout=0.5)
    has_dropout = [any(isinstance(m, torch.nn.Dropout2d) for m in block.modules()) for block in model.decoders]
    assert has_dropout == [True, True, True, False, False]
    model.eval()
    gray = torch.rand(1, 1, 32, 32)
    assert torch.equal(model(gray), model(gray)), "dropout must be off in eval mode"


def test_skip_norms_are_learned_affine_instance_norms():
    model = UNetColorizer(depth=2, base_channels=8)
    for norm in model.skip_norms:
        assert isinstance(norm, torch.nn.InstanceNorm2d) and norm.affine


def test_normal_init_statistics():
    model = init_normal(torch.nn.Conv2d(64, 64, 3), std=0.02)
    assert abs(model.weight.std().item() - 0.02) < 0.002
    assert model.bias.abs().max() == 0


def test_parameter_counts_documented_in_the_book():
    # depth 7 with base 64 matches ResNet152 in size, as the paper says of its critic
    assert count_parameters(UNetColorizer(depth=7)) == 54_991_938
    assert count_parameters(UNetColorizer(depth=2)) == 1_883_714
    assert count_parameters(ResNetCritic("resnet18")) == 11_178_753


@pytest.mark.parametrize("arch", ["resnet10", "resnet18"])
@pytest.mark.parametrize("stem", ["standard", "small", "auto"])
def test_critic_gives_one_logit_per_image(arch, stem):
    critic = ResNetCritic(arch, stem=stem)
    assert critic(torch.rand(3, 3, 32, 32), torch.rand(3, 1, 32, 32)).shape == (3,)
    if stem == "auto":
        assert critic.stem == "small"  # chosen at the first call for a 32x32 input


def test_critic_stem_choice_survives_a_state_dict_round_trip():
    a = ResNetCritic("resnet10", stem="auto")
    a(torch.rand(2, 3, 32, 32))
    b = ResNetCritic("resnet10", stem="auto")
    b.load_state_dict(a.state_dict())
    assert b.stem == "small"
    x = torch.rand(2, 3, 32, 32)
    a.eval(), b.eval()
    assert torch.allclose(a(x), b(x))


def test_critic_archs_include_paper_choices_and_errors_are_clear():
    assert {"resnet18", "resnet152"} <= set(CRITIC_ARCHS)
    with pytest.raises(ValueError, match="resnet18"):
        ResNetCritic("vgg")
    with pytest.raises(ValueError, match="norm"):
        ResNetCritic("resnet18", norm="weird")


def test_instance_norm_critic_does_not_mix_samples():
    critic = ResNetCritic("resnet10", norm="instance", stem="small").train()  # last stage 2x2: >1 value per channel
    x = torch.rand(4, 3, 32, 32)
    alone = critic(x[:1])
    together = critic(x)[:1]
    assert torch.allclose(alone, together, atol=1e-5)


def test_instance_norm_critic_refuses_inputs_that_would_give_a_constant_score():
    # 32x32 through the standard stem ends 1x1: instance norm would zero every channel
    with pytest.raises(ValueError, match="stem='small'"):
        ResNetCritic("resnet10", norm="instance")(torch.rand(2, 3, 32, 32))
    # the small stem ends 2x2 and the scores depend on the image
    critic = ResNetCritic("resnet10", norm="instance", stem="small").train()
    scores = critic(torch.rand(4, 3, 32, 32))
    assert scores.std() > 0
    assert ResNetCritic("resnet10", norm="instance")(torch.rand(2, 3, 33, 33)).shape == (2,)


def test_skips_pass_through_their_instance_norm():
    """The decoder sees each skip *after* its learned-affine instance norm: setting the norms' affine to a
    constant (scale 0, shift 0.3) must change the output; a skip that bypassed its norm would not."""
    torch.manual_seed(0)
    unet = UNetColorizer(depth=2, base_channels=8).eval()
    gray = torch.rand(2, 1, 16, 16)
    before = unet(gray)
    captured = []
    hook = unet.decoders[-1].register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    with torch.no_grad():
        for norm in unet.skip_norms:
            norm.weight.zero_()
            norm.bias.fill_(0.3)
    after = unet(gray)
    hook.remove()
    assert not torch.allclose(before, after)
    skip_channels = captured[0][:, -unet.channels[0]:]  # the finest skip: the last channels of the decoder input
    assert torch.allclose(skip_channels, torch.full_like(skip_channels, 0.3))


@pytest.mark.parametrize("name", ["resnet10", "resnet18", "resnet50"])
def test_our_resnet_is_torchvisions(name):
    """colorbook.models.resnet rebuilds torchvision's ResNet (to keep torchvision's 1.4 s import out of
    `import colorbook`): the same state-dict keys and shapes, and the same outputs from the same weights."""
    torchvision = pytest.importorskip("torchvision")
    from colorbook.models.resnet import ResNet
    block, layers = CRITIC_ARCHS[name]
    theirs_block = torchvision.models.resnet.BasicBlock if block.expansion == 1 else torchvision.models.resnet.Bottleneck
    torch.manual_seed(0)
    theirs = torchvision.models.resnet.ResNet(theirs_block, layers, num_classes=1).eval()
    ours = ResNet(block, layers, num_classes=1).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_sample_grids_are_laid_out_as_torchvision_lays_them_out():
    torchvision = pytest.importorskip("torchvision")
    from colorbook.training.loop import image_grid
    images = torch.rand(7, 3, 5, 4)
    for nrow in (1, 3, 7, 10):
        assert torch.equal(image_grid(images, nrow=nrow), torchvision.utils.make_grid(images, nrow=nrow, padding=2))
