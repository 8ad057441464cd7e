"""Find the grades a rater most likely got wrong. Placeholder until issue 6 lands."""

from oaviz.ui import placeholder

placeholder.render(
    "pages/label_audit.py",
    summary='Find the grades a rater most likely got wrong.',
    coming=[
        'Images whose rater grade disagrees with their latent neighbourhood (kNN vote or out-of-fold probe), ranked, shown with their neighbours',
        'Accept or change a grade; on synthetic cohorts, precision and recall at finding the grades the rater flipped',
        'Export of the corrected labels as CSV',
    ],
    issue=6,
    needs='a checkpoint and a cohort with KL grades',
)
