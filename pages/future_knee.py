"""Latent diffusion: what this knee may look like at the next visit. Placeholder until issue 5 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/future_knee.py",
    summary='Latent diffusion: what this knee may look like at the next visit.',
    coming=[
        'Several generated future knees for one image: mean, spread and difference map',
        'Predicted KL and 16 landmarks on current and future images',
        "Risk of progression and its ROC AUC against the cohort's true progression",
    ],
    issue=5,
    needs='VQ-VAE and diffusion checkpoints trained on visit pairs',
)
