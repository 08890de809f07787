"""Networks the trainers share: the U-Net generator family and the PatchGAN discriminator."""
