"""metrics: video/image metrics (FVD, LPIPS, SSIM, PSNR, CLIP-S, FID) as functions and torchmetrics classes."""
