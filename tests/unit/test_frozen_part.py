"""models.frozen.Frozen: a composed pretrained part is not trained, not saved, and still loads."""

from __future__ import annotations

import torch
from torch import nn

from oaviz.models.frozen import Frozen
from oaviz.models.standardise import ChannelStandardiser


class Owner(nn.Module):
    def __init__(self, part: nn.Module):
        super().__init__()
        self.own = nn.Linear(3, 3)
        self.part = Frozen(part)


def _part() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))


def test_the_part_is_left_out_of_the_weights_and_loads_back_strictly():
    owner = Owner(_part())
    keys = set(owner.state_dict())
    assert keys == {"own.weight", "own.bias"}
    wrapped = nn.Sequential(owner)                                   # nested: the prefix is "0.part."
    assert set(wrapped.state_dict()) == {"0.own.weight", "0.own.bias"}
    before = {k: v.clone() for k, v in owner.part.model.state_dict().items()}
    fresh = Owner(_part())
    fresh.load_state_dict(owner.state_dict(), strict=True)           # no missing keys for the part
    nn.Sequential(fresh).load_state_dict(wrapped.state_dict(), strict=True)
    assert all(torch.equal(before[k], v) for k, v in fresh.part.model.state_dict().items())


def test_the_part_stays_in_eval_without_weight_gradients_but_passes_input_gradients():
    owner = Owner(_part())
    owner.train()
    assert owner.own.training and not owner.part.training and not owner.part.model[1].training
    assert not any(p.requires_grad for p in owner.part.parameters())
    x = torch.randn(4, 3, requires_grad=True)
    owner.part(owner.own(x)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in owner.part.parameters())
    owner.to(torch.float64)                                          # .to() moves (and casts) the part too
    assert owner.part.model[0].weight.dtype == torch.float64


def test_channel_standardiser_fits_once_in_training_and_inverts():
    s = ChannelStandardiser(2)
    x = torch.randn(8, 2, 3, 3) * torch.tensor([2.0, 5.0]).view(1, 2, 1, 1) + 3
    s.eval()
    s.fit_once(x)
    assert not bool(s.initialised)                                  # eval: never fitted
    s.train()
    s.fit_once(x)
    y = s(x)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3)), torch.ones(2), atol=1e-5, rtol=0)
    s.fit_once(x * 10)                                               # already fitted: unchanged
    torch.testing.assert_close(s.inverse(s(x)), x, atol=1e-5, rtol=0)
