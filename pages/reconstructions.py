"""Originals beside their reconstructions, for radiologists. Placeholder until issue 4 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/reconstructions.py",
    summary='Originals beside their reconstructions, for radiologists.',
    coming=[
        'Original, reconstruction and error heatmap overlay with window/level and zoom',
        'Per-image MSE, PSNR and SSIM, sorted worst-first, filtered by grade',
        'Joint-space width measured on the original and on the reconstruction where landmarks are known',
    ],
    issue=4,
    needs='an autoencoder checkpoint',
)
