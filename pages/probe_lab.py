"""How much do the latents know? Linear probes under label scarcity and noise. Placeholder until issue 6 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/probe_lab.py",
    summary='How much do the latents know? Linear probes under label scarcity and noise.',
    coming=[
        'Logistic-regression probes on the latents with 5/10/25/50/100 % of the labels and 10 % label noise, 5 seeds',
        'Against a small CNN, raw pixels and random N(0, I) features',
        'Dual-head vs single-head classifiers: OA AUC, KL macro-AUC, kappa, paired tests',
    ],
    issue=6,
    needs='a checkpoint and a cohort with KL grades',
)
