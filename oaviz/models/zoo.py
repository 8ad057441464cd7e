"""Imports every model module so that each registers itself. Add new ones here."""

from oaviz.models import beta_vae, cnn, dual_head, vaesim  # noqa: F401
from oaviz.models import kecae, latent_diffusion, multitask, vqvae  # noqa: F401
