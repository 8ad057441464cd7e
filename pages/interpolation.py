"""Walk the latent space between two knees. Placeholder until issue 4 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/interpolation.py",
    summary='Walk the latent space between two knees.',
    coming=[
        'Pick two knees from the map, a list or an upload',
        'Linear and spherical paths with a step slider and the decoded strip',
        'Along the path: predicted KL, distance to the nearest real latent and prior log-density',
        'Severity axis: move one knee along the KL 0 → KL 4 direction — “this knee, two grades worse”',
    ],
    issue=4,
    needs='an autoencoder checkpoint',
)
