"""The KTH models: the generators V1-V3 and the scalar and PatchGAN discriminators of
"Simpsons Image Colorization using cGAN and PatchGAN". The loss and patch aggregation are in
:mod:`colorbook.losses.kth`.

Hotti, Malmberg and Nystad Öhman, "Simpsons Image Colorization using cGAN and
PatchGAN" (KTH DD2424 project, 2019). Introduced in the book's KTH chapter.

Everything works in sRGB. A generator reads the gray input ``(B, 1, H, W)`` in
``[0, 1]`` (BT.601 luma, :func:`colorbook.color.rgb_to_gray`) and returns an RGB
image ``(B, 3, H, W)`` in ``[0, 1]``; a discriminator reads an RGB image (and,
optionally, the gray input) and returns probabilities.

What is here
------------
- Generators (encoder-decoder "U-Net" shapes, 5 stride-2 stages each way, all
  convolutions without bias, BatchNorm, LeakyReLU 0.2 in the encoder, ReLU in
  the decoder, Tanh output):

  ============  =====  ==========================  ==========================  ============
  model         skips  encoder kernels             channels                    parameters
  ============  =====  ==========================  ==========================  ============
  GeneratorV1   no     3,3,3,3,3 (p1)              64,128,256,512,512          7,822,336
  GeneratorV2   yes    6,6,4,2,2 ("pyramid")       64,128,256,512,512          6,148,608
  GeneratorV3   no     8,8,6,6,2 ("pyramid 8")     80,160,320,640,640          23,373,760
  ============  =====  ==========================  ==========================  ============

  The decoders mirror the encoders with transposed convolutions. Height and
  width (square or not) must each be a multiple of 32 (five halvings): 32, 64,
  ..., 256, ...; other sizes raise a ValueError that names the nearest valid one.
- :class:`ScalarDiscriminator`: the cGAN discriminators, 8 convolutions down to one
  probability per image (kernels 6,6,4,4,2,2,1,4 for V2, 3,3,3,3,3,5,1,4 for V1,
  8,8,6,6,2,2,1,4 for V3). Built for one ``image_size`` (a multiple of 64).
- :class:`PatchDiscriminator`: the PatchGAN discriminator, 5 convolutions, a
  probability map with one value per 8x8 input block (32x32 for 256x256 inputs);
  each value sees a 60x60 window of the input (its receptive field).
- :func:`aggregate_patches`: mean | softmin | softmax over a patch map, and
  :func:`patch_aggregation_mode`: the Min-PatchGAN schedule.
- :class:`KTHObjective`: BCE with one-sided label smoothing + L1, with the
  aggregation schedule; plugs into :mod:`colorbook.train`.

Facts taken from the authors' public code where the paper is silent: the layer
shapes above, no conv biases, BatchNorm also on the first layer, the
discriminator of the PatchGAN sees only the RGB image, the L1 weight ``100/255``
on 0..255 pixel values (= 100 on 0..1 values: the paper's 0.392), and the
softmin/softmax passes (softmin on the discriminator's real pass and the
generator's pass, softmax on the discriminator's fake pass).
Choices of ours (see ``notes`` of the recipes): V3's paddings give exact halving
(the authors' V3 code produced 259x259 outputs from 256x256 inputs); PyTorch's
default initialisation (the authors' code sets none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "GeneratorV1",
    "GeneratorV2",
    "GeneratorV3",
    "EncoderDecoderGenerator",
    "GENERATORS",
    "ScalarDiscriminator",
    "PatchDiscriminator",
    "SCALAR_DISCRIMINATOR_SPECS",
    "receptive_field",
    "make_generator",
    "make_discriminator",
    "ConvSpec",
]


@dataclass(frozen=True)
class ConvSpec:
    """One convolution: ``out_channels``, square ``kernel``, ``stride``, ``padding``
    (and ``output_padding`` for transposed convolutions)."""

    out_channels: int
    kernel: int
    stride: int
    padding: int
    output_padding: int = 0


def _check_images(x: Tensor, name: str, channels: int) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}"
        )


# ---------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------


class EncoderDecoderGenerator(nn.Module):
    """Encoder-decoder generator, with or without U-Net skip connections.

    ``forward(gray (B, 1, H, W) in [0, 1]) -> rgb (B, 3, H, W) in [0, 1]``.
    The gray input is mapped to ``[-1, 1]`` inside; the Tanh output is mapped back
    with ``(x + 1) / 2``. H and W must be multiples of ``2**len(encoder)`` (32 for
    the KTH generators), at least that large.

    Encoder layer: Conv (no bias) -> BatchNorm -> LeakyReLU(0.2).
    Decoder layer: ConvTranspose (no bias) -> BatchNorm -> ReLU; the last one
    ConvTranspose -> Tanh. With ``skips`` each decoder layer after the first reads
    the previous decoder output concatenated with the encoder output of the same
    resolution (encoder features first, as in the authors' code).
    """

    color_space = "rgb"

    def __init__(
        self,
        encoder: Sequence[ConvSpec],
        decoder: Sequence[ConvSpec],
        skips: bool,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if len(encoder) != len(decoder):
            raise ValueError("encoder and decoder need the same number of layers")
        if decoder[-1].out_channels != 3:
            raise ValueError("the last decoder layer must output 3 (RGB) channels")
        self.skips = skips
        self.size_multiple = 1
        for spec in encoder:
            self.size_multiple *= spec.stride
        self.encoder = nn.ModuleList()
        channels = in_channels
        encoder_channels = []
        for spec in encoder:
            self.encoder.append(
                nn.Sequential(
                    nn.Conv2d(
                        channels,
                        spec.out_channels,
                        spec.kernel,
                        spec.stride,
                        spec.padding,
                        bias=False,
                    ),
                    nn.BatchNorm2d(spec.out_channels),
                    nn.LeakyReLU(0.2),
                )
            )
            channels = spec.out_channels
            encoder_channels.append(channels)
        self.decoder = nn.ModuleList()
        for index, spec in enumerate(decoder):
            if skips and index > 0:
                channels += encoder_channels[-1 - index]
            conv = nn.ConvTranspose2d(
                channels,
                spec.out_channels,
                spec.kernel,
                spec.stride,
                spec.padding,
                output_padding=spec.output_padding,
                bias=False,
            )
            last = index == len(decoder) - 1
            block = (
                nn.Sequential(conv, nn.Tanh())
                if last
                else nn.Sequential(conv, nn.BatchNorm2d(spec.out_channels), nn.ReLU())
            )
            self.decoder.append(block)
            channels = spec.out_channels

    def check_input(self, gray: Tensor) -> None:
        """Raise a ValueError unless ``gray`` is ``(B, 1, H, W)`` with H, W multiples of ``size_multiple``."""
        _check_images(gray, "gray", 1)
        height, width = gray.shape[-2:]
        m = self.size_multiple
        if height % m or width % m or height < m or width < m:
            raise ValueError(
                f"{type(self).__name__} needs H and W to be positive multiples of {m} "
                f"({len(self.encoder)} stride-2 stages), got {height}x{width}: resize or crop the "
                f"input, e.g. to {max(m, round(height / m) * m)}x{max(m, round(width / m) * m)}"
            )

    def forward(self, gray: Tensor) -> Tensor:
        self.check_input(gray)
        x = gray * 2.0 - 1.0
        features = []
        for layer in self.encoder:
            x = layer(x)
            features.append(x)
        for index, layer in enumerate(self.decoder):
            if self.skips and index > 0:
                x = torch.cat((features[-1 - index], x), dim=1)
            x = layer(x)
        return (x + 1.0) / 2.0


class GeneratorV1(EncoderDecoderGenerator):
    """KTH network 1: no skips, 3x3 kernels everywhere (stride 2, padding 1; the decoder uses
    ``output_padding=1`` so that each layer doubles exactly). 7,822,336 parameters."""

    def __init__(self) -> None:
        channels = (64, 128, 256, 512, 512)
        encoder = [ConvSpec(c, 3, 2, 1) for c in channels]
        decoder = [ConvSpec(c, 3, 2, 1, 1) for c in (512, 256, 128, 64, 3)]
        super().__init__(encoder, decoder, skips=False)


class GeneratorV2(EncoderDecoderGenerator):
    """KTH network 2 (also the PatchGAN generator): U-Net skips, "pyramid" kernels 6,6,4,2,2 in
    the encoder and 2,2,4,6,6 in the decoder. 6,148,608 parameters.

    Shapes for a 256x256 input: 64x128x128, 128x64x64, 256x32x32, 512x16x16, 512x8x8, then
    back up with concatenated skips (1024, 512, 256, 128 channels in) to 3x256x256."""

    def __init__(self) -> None:
        encoder = [
            ConvSpec(64, 6, 2, 2),
            ConvSpec(128, 6, 2, 2),
            ConvSpec(256, 4, 2, 1),
            ConvSpec(512, 2, 2, 0),
            ConvSpec(512, 2, 2, 0),
        ]
        decoder = [
            ConvSpec(512, 2, 2, 0),
            ConvSpec(256, 2, 2, 0),
            ConvSpec(128, 4, 2, 1),
            ConvSpec(64, 6, 2, 2),
            ConvSpec(3, 6, 2, 2),
        ]
        super().__init__(encoder, decoder, skips=True)


class GeneratorV3(EncoderDecoderGenerator):
    """KTH network 3: no skips, "pyramid" kernels 8,8,6,6,2 (decoder 2,6,6,8,8), channels
    80,160,320,640,640. 23,373,760 parameters.

    Paddings 3,3,2,2,0 are ours: they make every layer halve (double) the size exactly; the
    authors' code used padding 1 and produced 259x259 outputs for 256x256 inputs."""

    def __init__(self) -> None:
        encoder = [
            ConvSpec(80, 8, 2, 3),
            ConvSpec(160, 8, 2, 3),
            ConvSpec(320, 6, 2, 2),
            ConvSpec(640, 6, 2, 2),
            ConvSpec(640, 2, 2, 0),
        ]
        decoder = [
            ConvSpec(640, 2, 2, 0),
            ConvSpec(320, 6, 2, 2),
            ConvSpec(160, 6, 2, 2),
            ConvSpec(80, 8, 2, 3),
            ConvSpec(3, 8, 2, 3),
        ]
        super().__init__(encoder, decoder, skips=False)


GENERATORS = {"v1": GeneratorV1, "v2": GeneratorV2, "v3": GeneratorV3}


def make_generator(name: str) -> EncoderDecoderGenerator:
    """``"v1" | "v2" | "v3"`` -> a new generator."""
    if name not in GENERATORS:
        raise ValueError(
            f"unknown KTH generator {name!r}: choose one of {', '.join(GENERATORS)}"
        )
    return GENERATORS[name]()


# ---------------------------------------------------------------------------------------------
# Discriminators
# ---------------------------------------------------------------------------------------------


def receptive_field(model: nn.Module) -> int:
    """Receptive field (in input pixels) of one output value of a plain chain of
    convolutions.

    Walks the ``nn.Conv2d`` layers of ``model`` in registration order (valid for the
    discriminators here, which are chains): ``r <- r + (k - 1) * j`` and ``j <- j * s``,
    starting from ``r = j = 1``.
    """
    field, jump = 1, 1
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            kernel, stride, dilation = (
                layer.kernel_size[0],
                layer.stride[0],
                layer.dilation[0],
            )
            field += (kernel - 1) * dilation * jump
            jump *= stride
    return field


# Per variant: channels and (kernel, stride, padding) of the 7 layers before the final
# 1-channel convolution; the final kernel is the size of the map it reads (4 at 256x256).
SCALAR_DISCRIMINATOR_SPECS: dict[str, list[ConvSpec]] = {
    "v1": [
        ConvSpec(64, 3, 2, 1),
        ConvSpec(128, 3, 2, 1),
        ConvSpec(256, 3, 2, 1),
        ConvSpec(512, 3, 2, 1),
        ConvSpec(512, 3, 2, 1),
        ConvSpec(512, 5, 1, 0),
        ConvSpec(1, 1, 1, 0),
    ],
    "v2": [
        ConvSpec(64, 6, 2, 2),
        ConvSpec(128, 6, 2, 2),
        ConvSpec(256, 4, 2, 1),
        ConvSpec(512, 4, 2, 1),
        ConvSpec(512, 2, 2, 0),
        ConvSpec(512, 2, 2, 0),
        ConvSpec(1, 1, 1, 0),
    ],
    "v3": [
        ConvSpec(80, 8, 2, 3),
        ConvSpec(160, 8, 2, 3),
        ConvSpec(320, 6, 2, 2),
        ConvSpec(640, 6, 2, 2),
        ConvSpec(640, 2, 2, 0),
        ConvSpec(640, 2, 2, 0),
        ConvSpec(1, 1, 1, 0),
    ],
}


def _conv_out(size: int, spec: ConvSpec) -> int:
    return (size + 2 * spec.padding - spec.kernel) // spec.stride + 1


class ScalarDiscriminator(nn.Module):
    """The KTH cGAN discriminators: 8 convolutions, one probability per image.

    ``forward(image (B, 3, S, S) in [0, 1], gray (B, 1, S, S)) -> probabilities (B,)``.
    ``gray`` is accepted for the common interface and ignored (the authors' code shows the
    discriminator the RGB image only). Layers 1-7: Conv (no bias) -> BatchNorm -> LeakyReLU(0.2);
    layer 8: Conv -> Sigmoid, with a kernel as large as the map it reads (a 4x4 kernel at
    ``image_size=256``, as in the paper).

    Variants (kernels of the 8 layers at 256x256; parameter counts at 256x256):

    - ``"v2"``: 6,6,4,4,2,2,1,4 (the paper's Figure 2), channels 64..512: 5,024,914 parameters,
      receptive field 292 pixels (the whole image).
    - ``"v1"``: 3,3,3,3,3,5,1,4 (section 6.2), channels 64..512: 10,467,410 parameters.
    - ``"v3"``: 8,8,6,6,2,2,1,4, channels 80..640 (the authors' V3 code; paddings ours):
      13,332,978 parameters.

    ``image_size`` must be a multiple of 64 (six halvings in v2/v3), at least 64. At sizes below
    256 the maps get small: a kernel larger than the map it reads is shrunk to the map size (v1's
    5x5 layer at 64x64, the final layer everywhere), so the architecture equals the paper's only at
    256x256.
    """

    def __init__(self, variant: str = "v2", image_size: int = 256) -> None:
        super().__init__()
        if variant not in SCALAR_DISCRIMINATOR_SPECS:
            raise ValueError(
                f"unknown scalar discriminator {variant!r}: choose one of "
                f"{', '.join(SCALAR_DISCRIMINATOR_SPECS)}"
            )
        if image_size < 64 or image_size % 64:
            raise ValueError(
                f"ScalarDiscriminator needs image_size a multiple of 64 (>= 64), got {image_size}"
            )
        self.variant = variant
        self.image_size = image_size
        layers: list[nn.Module] = []
        channels, size = 3, image_size
        for spec in SCALAR_DISCRIMINATOR_SPECS[variant]:
            kernel = min(spec.kernel, size + 2 * spec.padding)
            spec = ConvSpec(spec.out_channels, kernel, spec.stride, spec.padding)
            layers += [
                nn.Conv2d(
                    channels,
                    spec.out_channels,
                    spec.kernel,
                    spec.stride,
                    spec.padding,
                    bias=False,
                ),
                nn.BatchNorm2d(spec.out_channels),
                nn.LeakyReLU(0.2),
            ]
            channels, size = spec.out_channels, _conv_out(size, spec)
            if size < 1:  # pragma: no cover - excluded by the image_size check
                raise ValueError(
                    f"image_size {image_size} is too small for variant {variant}"
                )
        layers += [nn.Conv2d(channels, 1, size, 1, 0, bias=False), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.receptive_field = receptive_field(self.net)

    def forward(self, image: Tensor, gray: Tensor | None = None) -> Tensor:
        _check_images(image, "image", 3)
        if tuple(image.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"this ScalarDiscriminator was built for {self.image_size}x{self.image_size} "
                f"images, got {tuple(image.shape[-2:])}: build one with image_size="
                f"{image.shape[-1]} (a multiple of 64) or resize the images"
            )
        return self.net(image).flatten(1).squeeze(1)


class PatchDiscriminator(nn.Module):
    """The KTH PatchGAN discriminator: one probability per image patch.

    ``forward(image (B, 3, H, W) in [0, 1], gray (B, 1, H, W)) -> patch map (B, 1, H/8, W/8)``
    of probabilities (Sigmoid), 32x32 for 256x256 inputs.

    Layers: 3->64 k6 s2 p2, 64->128 k6 s2 p2, 128->256 k4 s2 p1, 256->512 k3 s1 p1 (each Conv
    without bias -> BatchNorm -> LeakyReLU 0.2), 512->1 k3 s1 p1 -> Sigmoid.
    2,012,288 parameters (2,014,592 with ``condition_on_gray``). Each output value
    sees a 60x60 window of the input (receptive field) and neighbouring values are 8 pixels
    apart: the paper's "each patch corresponds to an 8x8 patch" is this stride.

    By default the discriminator ignores ``gray`` (as in the authors' code): it judges
    whether the colours look real, not whether they fit the input. ``condition_on_gray=True``
    concatenates the gray input as a 4th channel (pix2pix style); an ablation of ours.
    H and W must be multiples of 8.
    """

    def __init__(self, condition_on_gray: bool = False) -> None:
        super().__init__()
        self.condition_on_gray = condition_on_gray
        in_channels = 4 if condition_on_gray else 3

        def block(cin: int, cout: int, k: int, s: int, p: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, k, s, p, bias=False),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2),
            ]

        self.net = nn.Sequential(
            *block(in_channels, 64, 6, 2, 2),
            *block(64, 128, 6, 2, 2),
            *block(128, 256, 4, 2, 1),
            *block(256, 512, 3, 1, 1),
            nn.Conv2d(512, 1, 3, 1, 1, bias=False),
            nn.Sigmoid(),
        )
        self.receptive_field = receptive_field(self.net)
        self.patch_stride = 8

    def forward(self, image: Tensor, gray: Tensor | None = None) -> Tensor:
        _check_images(image, "image", 3)
        height, width = image.shape[-2:]
        if height % 8 or width % 8 or height < 8 or width < 8:
            raise ValueError(
                f"PatchDiscriminator needs H and W to be positive multiples of 8, got {height}x{width}"
            )
        if self.condition_on_gray:
            if gray is None:
                raise ValueError(
                    "this PatchDiscriminator is conditioned on the gray input: pass gray (B, 1, H, W)"
                )
            _check_images(gray, "gray", 1)
            if gray.shape[-2:] != image.shape[-2:] or gray.shape[0] != image.shape[0]:
                raise ValueError(
                    f"gray {tuple(gray.shape)} does not match image {tuple(image.shape)}"
                )
            image = torch.cat((image, gray), dim=1)
        return self.net(image)


def make_discriminator(
    kind: str,
    *,
    variant: str = "v2",
    image_size: int = 256,
    condition_on_gray: bool = False,
) -> nn.Module:
    """``kind="scalar"`` -> :class:`ScalarDiscriminator` (``variant``, ``image_size``);
    ``kind="patch"`` -> :class:`PatchDiscriminator` (``condition_on_gray``)."""
    if kind == "scalar":
        if condition_on_gray:
            raise ValueError(
                "condition_on_gray is only implemented for the patch discriminator"
            )
        return ScalarDiscriminator(variant, image_size)
    if kind == "patch":
        return PatchDiscriminator(condition_on_gray=condition_on_gray)
    raise ValueError(f"unknown discriminator kind {kind!r}: choose 'scalar' or 'patch'")
