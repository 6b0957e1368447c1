"""The Geo4D network: UNet, resampler, CLIP towers and VAE, with their configs and checkpoint names."""
