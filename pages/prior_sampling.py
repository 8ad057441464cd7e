"""Knees the model imagines: samples from the N(0, I) prior. Placeholder until issue 4 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/prior_sampling.py",
    summary='Knees the model imagines: samples from the N(0, I) prior.',
    coming=[
        'A grid of prior samples with a temperature slider and a seed',
        'Each sample with its predicted KL grade',
        'For VAESim: samples near a chosen prototype with a similarity threshold',
    ],
    issue=4,
    needs='a β-VAE or VAESim checkpoint',
)
