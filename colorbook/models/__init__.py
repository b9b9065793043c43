"""The networks: the DTU UNet (``unet``) and ResNet critic (``critic``), the KTH generators and
discriminators (``kth``), and what they share (``common``)."""
