"""Risk of progression from grade probabilities, and the target it is scored against (hand cases)."""

from __future__ import annotations

import numpy as np
import pytest

from oaviz.analysis.progression_risk import (grade_transition, mean_future_probs, progression_risk,
                                             progression_target, risk_percentile)


def test_risk_hand_cases():
    e = np.eye(5)
    assert progression_risk(e[[0]], e[[2]])[0] == pytest.approx(1.0)       # 0 now, 2 later: certain progression
    assert progression_risk(e[[2]], e[[0]])[0] == pytest.approx(0.0)       # regression is not progression
    assert progression_risk(e[[3]], e[[3]])[0] == pytest.approx(0.0)
    p = np.array([[0.1, 0.2, 0.3, 0.25, 0.15]])
    expected = sum(p[0, i] * p[0, j] for i in range(5) for j in range(i + 1, 5))
    assert progression_risk(p, p)[0] == pytest.approx(expected)
    # identical distributions: Σ_{i<j} p_i p_j = (1 − Σ p_i²)/2
    assert expected == pytest.approx((1 - (p ** 2).sum()) / 2)


def test_risk_averages_sampled_futures_and_matches_brute_force():
    rng = np.random.default_rng(0)
    now = rng.dirichlet(np.ones(5), size=6)
    fut = rng.dirichlet(np.ones(5), size=(6, 4))                 # 4 sampled futures per knee
    r = progression_risk(now, fut)
    fbar = fut.mean(1)
    brute = [sum(now[n, i] * fbar[n, j] for i in range(5) for j in range(i + 1, 5)) for n in range(6)]
    np.testing.assert_allclose(r, brute, rtol=1e-12)
    np.testing.assert_allclose(mean_future_probs(fut), fbar)
    np.testing.assert_allclose(np.triu(grade_transition(now, fut), k=1).sum((1, 2)), r, rtol=1e-12)
    with pytest.raises(ValueError, match=r"p_now \(6, 5\) and p_future \(6, 4, 4\) do not match"):
        progression_risk(now, fut[:, :, :4] / fut[:, :, :4].sum(-1, keepdims=True))
    with pytest.raises(ValueError, match="sum to 1"):
        progression_risk(now * 2, fut)
    assert risk_percentile(0.5, [0.1, 0.5, 0.9, 0.7]) == 50.0


def test_progression_target_is_a_kl_rise_and_excludes_kl4():
    rise, eligible = progression_target([0, 1, 2, 4, 3], [0, 2, 1, 4, 4])
    assert rise.tolist() == [False, True, False, False, True]
    assert eligible.tolist() == [True, True, True, False, True]      # KL 4 cannot progress
    with pytest.raises(ValueError, match="0..4"):
        progression_target([5], [5])
