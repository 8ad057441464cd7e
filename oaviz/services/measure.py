"""What a page measures on the images it shows: medial/lateral joint-space width, landmark-free.

Generated, decoded and exchanged knees have no landmarks, so the width is read
from the pixels (``oaviz.analysis.joint_space``), with the cohort's pixel spacing
scaled to the image size and the side convention of the cohort (left knees
mirrored → medial on the right).
"""

from __future__ import annotations

import numpy as np

from oaviz.analysis.joint_space import JointSpace, measure_joint_space
from oaviz.data.cohort import Cohort


def images_pixel_mm(cohort: Cohort | None, image_size: int) -> float | None:
    """Pixel spacing of images shown at ``image_size`` px from this cohort (None when unknown)."""
    if cohort is None or not cohort.info.get("pixel_spacing_mm"):
        return None
    return float(cohort.info["pixel_spacing_mm"]) * cohort.images.shape[-1] / float(image_size)


def measured_jsw(images: np.ndarray, cohort: Cohort | None) -> JointSpace:
    """Medial/lateral JSW of knee images [N, S, S] (model space), in mm where the cohort's spacing is known.

    The cohort's knees are stored medial-right when its left knees were mirrored (every importer and
    the generator do so by default); that is assumed for the images a model makes from them.
    """
    images = np.asarray(images)
    return measure_joint_space(images, medial_right=True, pixel_mm=images_pixel_mm(cohort, images.shape[-1]))


def jsw_caption(js: JointSpace, i: int) -> str:
    """'JSW med 4.1 / lat 5.6 mm' (px when the spacing is unknown; '—' when not measurable)."""
    mm = np.isfinite(js.medial_mm[i]) or np.isfinite(js.lateral_mm[i])
    med, lat = (js.medial_mm[i], js.lateral_mm[i]) if mm else (js.medial_px[i], js.lateral_px[i])
    fmt = lambda v: "—" if not np.isfinite(v) else f"{v:.1f}"  # noqa: E731
    return f"JSW med {fmt(med)} / lat {fmt(lat)} {'mm' if mm else 'px'}"
