"""Frozen models made fast to serve: the same images, computed in layouts the CPU's kernels run well.

``prepare_for_serving(model)`` is what ``checkpoints.load_checkpoint(frozen=True)`` applies to a model
shared by the app's sessions (never trained or saved again):
- transposed-conv weights in channels-last layout (oneDNN then decodes ~25 % faster; bit-identical);
- a decoder's output layer (a 4×4, stride-2, padding-1 transposed conv to ≤ 4 channels) rewritten as its
  sub-pixel equivalent (``SubpixelDeconv``): oneDNN's deconvolution to one channel runs at a few per
  cent of the core's peak (3.8 of the demo β-VAE's 10.6 ms for 16 images in bf16), a 3×3 convolution
  to 4·C phase channels and a pixel shuffle compute the same sums in about half the time;
- ``model.serving = True``: ``services.model_io.decode`` then decodes at the hardware's fast precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Output row 2m + r of a k=4, s=2, p=1 transposed conv sums input rows m-1, m, m+1 (window positions
# 0, 1, 2) with kernel taps: r = 0 -> x[m-1]·w[3] + x[m]·w[1];  r = 1 -> x[m]·w[2] + x[m+1]·w[0].
_PHASE_TAPS = {0: ((0, 3), (1, 1)), 1: ((1, 2), (2, 0))}   # phase -> ((window position, kernel tap), …)
MAX_SUBPIXEL_CHANNELS = 4   # wider layers run faster as oneDNN deconvolutions (3×3 wastes 5/9 of its taps)


def subpixel_weight(w: torch.Tensor) -> torch.Tensor:
    """Transposed-conv weight [C_in, C_out, 4, 4] -> 3×3 conv weight [4·C_out, C_in, 3, 3], phase channels
    ordered (c, row phase, column phase) as ``F.pixel_shuffle(·, 2)`` expects."""
    cin, cout = w.shape[:2]
    out = w.new_zeros(cout, 2, 2, cin, 3, 3)
    for ry, row_taps in _PHASE_TAPS.items():
        for rx, col_taps in _PHASE_TAPS.items():
            for py, ky in row_taps:
                for px, kx in col_taps:
                    out[:, ry, rx, :, py, px] = w[:, :, ky, kx].T
    return out.reshape(cout * 4, cin, 3, 3)


def is_subpixel_candidate(m: nn.Module) -> bool:
    """A plain 4×4, stride-2, padding-1 transposed conv to at most MAX_SUBPIXEL_CHANNELS channels."""
    return (isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (4, 4) and m.stride == (2, 2)
            and m.padding == (1, 1) and m.output_padding == (0, 0) and m.dilation == (1, 1)
            and m.groups == 1 and m.padding_mode == "zeros" and m.out_channels <= MAX_SUBPIXEL_CHANNELS)


class SubpixelDeconv(nn.Module):
    """The sub-pixel form of such a transposed conv: [B, C_in, H, W] -> [B, C_out, 2H, 2W], the same
    output to float rounding (≤ 1e-5 on the bundled decoders). Weights are buffers: it serves, never trains."""

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        if not is_subpixel_candidate(deconv):
            raise ValueError(f"not a 4×4 stride-2 padding-1 transposed conv to ≤ {MAX_SUBPIXEL_CHANNELS} channels: {deconv}")
        w = deconv.weight.detach()
        self.register_buffer("weight", subpixel_weight(w.contiguous()))
        bias = deconv.bias.detach() if deconv.bias is not None else w.new_zeros(deconv.out_channels)
        self.register_buffer("bias", bias.repeat_interleave(4))
        self.out_channels = deconv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=1), 2)


def prepare_for_serving(model: nn.Module) -> nn.Module:
    """In place (see the module docstring); returns the model. Only for frozen models: the rewritten
    layers hold no parameters, so the model can no longer be trained or saved in its own format."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if is_subpixel_candidate(child):
                setattr(parent, name, SubpixelDeconv(child))
            elif isinstance(child, nn.ConvTranspose2d):
                child.to(memory_format=torch.channels_last)
    model.serving = True
    return model
