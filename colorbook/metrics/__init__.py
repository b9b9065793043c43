"""Colorization metrics: ``image`` (any data: PSNR, SSIM, colourfulness, a*b* histograms),
``mnist`` (hue accuracy, chroma ratio), ``digits`` (a digit classifier and its Frechet distance, not FID)
and ``fid`` (FID with pytorch-fid's InceptionV3)."""
