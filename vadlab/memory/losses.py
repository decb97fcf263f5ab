"""Memory losses and feature distances (MNAD Eq. 10-14, DREAM Eq. 5, 7, 8, 11, MAAM Eq. 8-9).

Choices (where the papers leave room or the public code departs from them)
--------------------------------------------------------------------------
1. Compactness / separateness / feature distance: MNAD (Eq. 10, 12, 14) writes unsquared L2 norms
   (``squared=False``, the default), DREAM (Eq. 7, 8, 11) squared ones (``squared=True``). Both papers sum over
   queries; we take the MEAN over the queries, so the loss weights do not scale with batch size or feature-map size
   (a caller wanting the paper's sum over K multiplies by K). The public MNAD code uses MSE; we do not.
2. In the compactness and separateness losses the items are detached: gradients flow into the queries only, the
   items being updated by MNAD Eq. 3 / DREAM Eq. 3-4 "without any supervisory signals".
3. The nearest item p = argmax_m p_m^T q_k (MNAD Eq. 11; for unit vectors this is the item at the smallest L2
   distance, the same in both papers); the second nearest n (Eq. 13) is the argmax with p excluded. Ties go to the
   lowest index.
4. ``query_mask`` (B,) bool selects the samples whose queries count (DREAM routes normal samples to the normality
   branch, abnormal ones to the abnormality branch); the loss is the mean over the selected samples' queries, and
   exactly 0 (with the autograd graph intact) when none is selected. Computed without host sync.
5. MAAM Eq. 8 (``entropy_loss``) and Eq. 9 (``latent_margin_loss``) are per query (per latent position), averaged
   over the queries. Eq. 8 sums over the N items (``item_reduction="sum"``); the public MAAM code averages over
   them, which is N times weaker at the same alpha (``item_reduction="mean"`` reproduces that strength).
6. DREAM Eq. 5 (``triplet_loss``) uses squared Euclidean distances (``squared=True``, default), not
   ``nn.TripletMarginLoss``'s unsquared ones, and averages over the batch of triplets.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vadlab.memory.addressing import _nearest_from_logits, matching_logits

__all__ = [
    "compactness_loss",
    "separateness_loss",
    "feature_distance",
    "entropy_loss",
    "latent_margin_loss",
    "triplet_loss",
]


def _nearest_distance(queries: Tensor, items: Tensor, nearest: Tensor, squared: bool = False) -> Tensor:
    """||q_k - p_i||_2 (or its square) per query (B, K) for the given item indices (B, K)."""
    p = items[nearest]  # (B, K, C), p_i for each query
    if squared:
        return (queries - p).square().sum(dim=-1)  # (B, K), ||q - p||_2^2 (smooth at q == p)
    return torch.linalg.vector_norm(queries - p, ord=2, dim=-1)  # (B, K), ||q - p||_2


def _masked_mean(per_query: Tensor, query_mask: Tensor | None) -> Tensor:
    """Mean of (B, K) over all queries, or over the queries of the samples selected by ``query_mask`` (B,) bool."""
    if query_mask is None:
        return per_query.mean()  # scalar
    B, K = per_query.shape
    if query_mask.shape != (B,):
        raise ValueError(f"query_mask must have shape (B,) = ({B},), got {tuple(query_mask.shape)}")
    keep = query_mask.to(device=per_query.device, dtype=torch.bool).unsqueeze(-1)  # (B, 1)
    total = torch.where(keep, per_query, torch.zeros_like(per_query)).sum()  # scalar, sum over selected queries
    count = keep.to(per_query.dtype).sum() * K  # scalar, number of selected queries
    return total / count.clamp_min(1.0)  # scalar, 0 (graph intact) when nothing is selected


def compactness_loss(
    queries: Tensor, items: Tensor, *, squared: bool = False, query_mask: Tensor | None = None
) -> Tensor:
    """MNAD Eq. 10-11 / DREAM Eq. 7: mean over queries of ||q_k - p_p||_2 (or squared), scalar. Items detached."""
    items = items.detach()  # (M, C), items get no gradient (updated by the update rule only)
    logits = matching_logits(queries, items)  # (B, K, M)
    nearest = logits.argmax(dim=-1)  # (B, K), MNAD Eq. 11
    per_query = _nearest_distance(queries, items, nearest, squared)  # (B, K)
    return _masked_mean(per_query, query_mask)  # scalar, Eq. 10 / DREAM Eq. 7 with mean instead of sum


def separateness_loss(
    queries: Tensor, items: Tensor, margin: float, *, squared: bool = False, query_mask: Tensor | None = None
) -> Tensor:
    """MNAD Eq. 12-13 / DREAM Eq. 8: mean over queries of [d(q, p_p) - d(q, p_n) + margin]_+, scalar.

    d is ||.||_2 (MNAD) or ||.||_2^2 (DREAM, ``squared=True``). Items are detached. Raises ValueError when M < 2.
    """
    items = items.detach()  # (M, C), items get no gradient (updated by the update rule only)
    logits = matching_logits(queries, items)  # (B, K, M)
    nearest, second = _nearest_from_logits(logits)  # (B, K), (B, K), MNAD Eq. 11, 13
    d_pos = _nearest_distance(queries, items, nearest, squared)  # (B, K), d(q, p_p)
    d_neg = _nearest_distance(queries, items, second, squared)  # (B, K), d(q, p_n)
    per_query = torch.relu(d_pos - d_neg + margin)  # (B, K), the hinge of Eq. 12 / DREAM Eq. 8
    return _masked_mean(per_query, query_mask)  # scalar, mean instead of sum


def feature_distance(queries: Tensor, items: Tensor, *, squared: bool = False) -> Tensor:
    """MNAD Eq. 14 / DREAM Eq. 11: D = (1/K) sum_k d(q_t^k, p_p) per frame, (B,). Not detached (a score).

    d is ||.||_2 (MNAD) or ||.||_2^2 (DREAM, ``squared=True``).
    """
    logits = matching_logits(queries, items)  # (B, K, M)
    nearest = logits.argmax(dim=-1)  # (B, K), MNAD Eq. 11
    return _nearest_distance(queries, items, nearest, squared).mean(dim=-1)  # (B,), Eq. 14 / DREAM Eq. 11


def entropy_loss(weights: Tensor, eps: float = 1e-12, *, item_reduction: str = "sum") -> Tensor:
    """MAAM Eq. 8: -sum_i w_i log(w_i + eps) per query over the last dim (N items), averaged over queries: scalar.

    ``weights`` (..., N), e.g. the (B, K, N) weights of ``shrinkage_read``. Zero weights contribute exactly 0, and
    eps keeps the gradient finite there. ``item_reduction="mean"`` divides by N (the public code's strength).
    """
    if item_reduction not in ("sum", "mean"):
        raise ValueError(f"item_reduction must be 'sum' or 'mean', got {item_reduction!r}")
    per_entry = -weights * torch.log(weights + eps)  # (..., N), -w_i log w_i
    per_query = per_entry.sum(dim=-1) if item_reduction == "sum" else per_entry.mean(dim=-1)  # (...), Eq. 8
    return per_query.mean()  # scalar, mean over queries


def latent_margin_loss(read: Tensor, queries: Tensor, margin: float, eps: float = 1e-12) -> Tensor:
    """MAAM Eq. 9: max(|cos(z_hat, z)| - zeta, 0) per query, averaged over queries: scalar.

    ``read`` z_hat and ``queries`` z are (..., C) of the same shape; ``margin`` is zeta. The loss is positive when
    z_hat is MORE aligned with z than zeta (it pushes the read away from the query). A zero vector has cosine 0.
    """
    if read.shape != queries.shape:
        raise ValueError(
            f"read and queries must have the same shape, got {tuple(read.shape)} and {tuple(queries.shape)}"
        )
    r_unit = torch.nn.functional.normalize(read, p=2.0, dim=-1, eps=eps)  # (..., C), z_hat / ||z_hat||
    q_unit = torch.nn.functional.normalize(queries, p=2.0, dim=-1, eps=eps)  # (..., C), z / ||z||
    cos = (r_unit * q_unit).sum(dim=-1)  # (...), z_hat^T z / (||z_hat|| ||z||)
    return torch.relu(cos.abs() - margin).mean()  # scalar, Eq. 9 averaged over queries


def triplet_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float, *, squared: bool = True) -> Tensor:
    """DREAM Eq. 5: max(0, ||f_a - f_p||^2 - ||f_a - f_n||^2 + beta), averaged over the batch: scalar.

    ``anchor``, ``positive``, ``negative`` are (B, D) features (or any (..., D) of one shape); ``margin`` is beta.
    ``squared=False`` uses unsquared distances (``nn.TripletMarginLoss`` without its eps), not DREAM's rule.
    """
    if not (anchor.shape == positive.shape == negative.shape) or anchor.dim() < 1:
        raise ValueError(
            "anchor, positive and negative must have the same shape (B, D), got "
            f"{tuple(anchor.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    if squared:
        d_pos = (anchor - positive).square().sum(dim=-1)  # (B,), ||f_a - f_p||_2^2
        d_neg = (anchor - negative).square().sum(dim=-1)  # (B,), ||f_a - f_n||_2^2
    else:
        d_pos = torch.linalg.vector_norm(anchor - positive, ord=2, dim=-1)  # (B,), ||f_a - f_p||_2
        d_neg = torch.linalg.vector_norm(anchor - negative, ord=2, dim=-1)  # (B,), ||f_a - f_n||_2
    return torch.relu(d_pos - d_neg + margin).mean()  # scalar, Eq. 5 averaged over the batch
