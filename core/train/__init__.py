"""Training of the embedded `tiny` Geo4D model on synthetic scenes: data, autoencoders, denoiser, recipe."""
