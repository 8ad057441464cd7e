"""A pretrained model that another model composes but never trains or saves."""

from __future__ import annotations

from torch import nn


class Frozen(nn.Module):
    """Holds ``model`` as a fixed part of its owner: always in eval mode, no gradients to its weights
    (gradients still flow through it to its inputs), moved by the owner's ``.to()``, and left out of the
    owner's state dict, because its own checkpoint (named in the owner's config) holds it.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self._register_state_dict_hook(_drop_own_keys)
        self._register_load_state_dict_pre_hook(_keep_own_weights, with_module=True)

    def train(self, mode: bool = True) -> "Frozen":
        return super().train(False)                      # batch-norm statistics and codebooks stay fixed

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def _drop_own_keys(module, state_dict, prefix, local_metadata):
    for k in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[k]


def _keep_own_weights(module, state_dict, prefix, *_):
    # A saved owner has no keys for this part: load the part's current weights onto themselves.
    for k, v in module.model.state_dict(prefix=prefix + "model.").items():
        state_dict.setdefault(k, v)
