"""colorbook: GAN colorization of grayscale images, the package behind the colorbook course.

Modules: ``color`` (RGB <-> CIELAB), ``data``, ``models`` (DTU UNet, ResNet critic), ``losses``,
``kth`` (KTH cGANs and PatchGAN), ``cartoons``, ``recipes``, ``train``, ``colorize``, ``metrics``,
``fid``, ``profile``. See DESIGN.md in the repository for how they fit together.
"""
__version__ = "0.1.0"
