"""2D maps of the latent codes, coloured by grade, with selections and decoding anywhere. Placeholder until issue 4 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/latent_map.py",
    summary='2D maps of the latent codes, coloured by grade, with selections and decoding anywhere.',
    coming=[
        'The chosen cohort embedded by the chosen checkpoint (cached), projected with PCA, UMAP or t-SNE (parameters and seed shown)',
        'Colour by rater KL, true KL, OA, severity, subject, visit, side, split, reconstruction error, probe prediction or VAESim cluster',
        'Box / lasso selection with grade mix, mean image and CSV export; a detail panel with nearest neighbours',
        'Click an empty spot to decode a latent there and compare it with the nearest real knee',
        'Latent-structure numbers: intra/inter-group distances, silhouette, kNN accuracy, trustworthiness',
        'Upload a knee (PNG, JPEG or DICOM) and see where it lands',
    ],
    issue=4,
    needs='an autoencoder checkpoint (β-VAE or VAESim) and a cohort',
)
