"""The Geo4D network: its parts and configs, checkpoint I/O, loading, the sampler and the window pipeline."""
