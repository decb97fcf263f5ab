"""Model-side tensor ops shared by methods: per-frame PSNR (MNAD Eq. 15)."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from vadlab.eval.metrics import MetricsError  # the eval package never imports vadlab.models: no cycle

__all__ = ["PSNR_CAP_DB", "psnr"]

#: PSNR reported for a perfect reconstruction (mse == 0): finite, so -PSNR can be min-max normalised.
#: Any mse below ``peak**2 * 10**(-PSNR_CAP_DB / 10)`` is clamped to it, so PSNR never exceeds the cap.
PSNR_CAP_DB = 100.0


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")  # if torch was never imported, x cannot be a tensor
    return torch is not None and isinstance(x, torch.Tensor)


def psnr(pred: Any, target: Any, peak: float = 1.0) -> Any:
    """Per-frame PSNR in dB, ``10 * log10(peak**2 / mse)`` (MNAD Eq. 15 as implemented in practice).

    Images are expected in ``[0, peak]`` (``peak=1.0`` for [0, 1] images). Shapes: ``(B, C, H, W)`` gives
    ``(B,)``; a single image ``(C, H, W)`` or ``(H, W)`` gives a 0-d result. Torch tensors return a tensor on
    the same device (computed in at least float32, no host sync, differentiable); numpy inputs return float64
    numpy. An mse of 0 (or below ``peak**2 * 10**(-PSNR_CAP_DB/10)``) gives the finite cap ``PSNR_CAP_DB``.
    """
    if peak <= 0 or not math.isfinite(peak):
        raise MetricsError(f"psnr: peak must be a positive finite number, got {peak!r}")
    if _is_tensor(pred) or _is_tensor(target):
        import torch

        pred_t = torch.as_tensor(pred)
        target_t = torch.as_tensor(target, device=pred_t.device)
        if pred_t.shape != target_t.shape:
            raise MetricsError(f"psnr: pred shape {tuple(pred_t.shape)} != target shape {tuple(target_t.shape)}")
        dtype = torch.float64 if torch.float64 in (pred_t.dtype, target_t.dtype) else torch.float32
        diff = pred_t.to(dtype) - target_t.to(dtype)
        dims = _psnr_dims(diff.ndim)
        mse = diff.pow(2).mean(dim=dims)  # (B,) or ()
        floor = peak**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
        return 10.0 * torch.log10(peak**2 / mse.clamp_min(floor))
    pred_a = np.asarray(pred, dtype=np.float64)
    target_a = np.asarray(target, dtype=np.float64)
    if pred_a.shape != target_a.shape:
        raise MetricsError(f"psnr: pred shape {pred_a.shape} != target shape {target_a.shape}")
    dims = _psnr_dims(pred_a.ndim)
    mse = np.mean((pred_a - target_a) ** 2, axis=dims)  # (B,) or ()
    floor = peak**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)
    return 10.0 * np.log10(peak**2 / np.maximum(mse, floor))


def _psnr_dims(ndim: int) -> tuple[int, ...]:
    if ndim == 4:  # (B, C, H, W): one value per frame
        return (1, 2, 3)
    if ndim in (2, 3):  # one image (H, W) or (C, H, W)
        return tuple(range(ndim))
    raise MetricsError(f"psnr: expected (B, C, H, W), (C, H, W) or (H, W), got {ndim} dimensions")
