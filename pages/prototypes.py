"""VAESim's prototypes: what each cluster of knees looks like. Placeholder until issue 4 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/prototypes.py",
    summary="VAESim's prototypes: what each cluster of knees looks like.",
    coming=[
        'Decoded prototypes with size, KL mix, purity and nearest real knees',
        'Prototype-similarity heatmap and the t-SNE/UMAP map with prototypes overlaid',
        'Statistical-mapping, kNN and linear accuracy against a VAE + KMeans baseline with the same K',
    ],
    issue=4,
    needs='a VAESim checkpoint',
)
