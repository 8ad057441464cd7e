"""KECAE: swap the key features of a healthy and an osteoarthritic knee. Placeholder until issue 5 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/key_exchange.py",
    summary='KECAE: swap the key features of a healthy and an osteoarthritic knee.',
    coming=[
        'For a chosen KL 0 / KL 2 pair: both reconstructions and both exchanged outputs',
        "The frozen discriminator's probability on each output",
        'An augmentation set from exchanged pairs and the accuracy gain of a classifier trained with it',
    ],
    issue=5,
    needs='a KECAE checkpoint',
)
