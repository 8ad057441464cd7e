"""oaviz: interactive latent-space exploration of generative models of OA radiographs."""

__version__ = "0.1.0"
