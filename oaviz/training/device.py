"""Device choice and mixed precision."""

from __future__ import annotations

import contextlib

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else MPS, else CPU; otherwise the named device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    return torch.device(name)


def autocast(device: torch.device):
    """Mixed precision on GPU (bf16 where supported, else fp16); full precision on CPU/MPS."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling only for fp16 on CUDA (bf16 does not need it)."""
    enabled = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=enabled)
