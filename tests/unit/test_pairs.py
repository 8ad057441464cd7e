import numpy as np
import pandas as pd
import pytest

from oaviz.data.cohort import load_cohort
from oaviz.data.errors import DataError
from oaviz.data.pairs import grade_pairs, visit_pairs


def test_visit_pairs_are_consecutive_same_subject_and_side(tiny_cohort):
    m = load_cohort(tiny_cohort).metadata
    p = visit_pairs(m)
    assert len(p) == 24 * 2  # 3 visits -> 2 consecutive pairs per subject
    assert (m.subject_id.to_numpy()[p.idx_now] == m.subject_id.to_numpy()[p.idx_next]).all()
    assert (m.side.to_numpy()[p.idx_now] == m.side.to_numpy()[p.idx_next]).all()
    assert (p.gap_months == 12).all()
    assert ((p.kl_next > p.kl_now) == p.progressed.astype(bool)).all()
    assert len(visit_pairs(m, horizon_months=24)) == 0


def test_visit_pairs_unordered_rows_and_split():
    m = pd.DataFrame({"subject_id": ["a", "a", "b", "a", "b"], "side": ["R", "R", "L", "L", "L"],
                      "visit_month": [24, 0, 12, 0, 0], "kl": [2, 1, 3, 0, 3],
                      "split": ["train", "train", "test", "train", "test"]})
    p = visit_pairs(m)
    assert sorted(zip(p.idx_now, p.idx_next)) == [(1, 0), (4, 2)]
    assert list(visit_pairs(m, split="test").idx_now) == [4]


def test_grade_pairs(tiny_cohort):
    m = load_cohort(tiny_cohort).metadata
    pairs = grade_pairs(m, 0, 2, split=None, random_state=1)
    assert (m.kl.to_numpy()[pairs[:, 0]] == 0).all() and (m.kl.to_numpy()[pairs[:, 1]] == 2).all()
    np.testing.assert_array_equal(pairs, grade_pairs(m, 0, 2, split=None, random_state=1))
    with pytest.raises(DataError, match="KL 0 and KL 7"):
        grade_pairs(m, 0, 7)
