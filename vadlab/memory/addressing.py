"""Memory addressing: similarities, read weights and reads (MNAD Eq. 1-2, 11, 13; MAAM Eq. 1-4).

Conventions (package docstring): ``queries`` (B, K, C), ``items`` (M, C). MNAD's ops take unit vectors as given and
use the dot product p_m^T q_k; MAAM's ops normalise inside (a true cosine, Eq. 1), so they take any vectors.
Everything here is differentiable: MNAD's read passes gradients into the queries and items, and MAAM learns its
items by gradient descent through ``shrinkage_read``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "matching_logits",
    "read_weights",
    "read",
    "read_and_concat",
    "nearest_items",
    "cosine_similarity",
    "reference_similarity",
    "MAAM_SIMILARITIES",
    "hard_shrinkage",
    "shrinkage_read",
]


def _check(queries: Tensor, items: Tensor) -> None:
    """Shape checks only (host-side metadata, no device sync)."""
    if queries.dim() != 3:
        raise ValueError(f"queries must have shape (B, K, C), got {tuple(queries.shape)}")
    if items.dim() != 2:
        raise ValueError(f"items must have shape (M, C), got {tuple(items.shape)}")
    if queries.shape[-1] != items.shape[-1]:
        raise ValueError(
            f"channel mismatch: queries have C={queries.shape[-1]}, items have C={items.shape[-1]}"
        )
    if items.shape[0] < 1:
        raise ValueError("the memory must hold at least one item (M >= 1)")


# ---------------------------------------------------------------------------------------------------------------
# MNAD (Park et al. 2020), also DREAM's read (DREAM Eq. 1-2 are MNAD Eq. 1-2)
# ---------------------------------------------------------------------------------------------------------------


def matching_logits(queries: Tensor, items: Tensor) -> Tensor:
    """Correlation map p_m^T q_k (cosine similarity for unit inputs, Eq. 1's exponent): (B, K, M)."""
    _check(queries, items)
    return torch.matmul(queries, items.transpose(0, 1))  # (B, K, C) @ (C, M) -> (B, K, M)


def read_weights(queries: Tensor, items: Tensor, temperature: float | Tensor = 1.0) -> Tensor:
    """MNAD Eq. 1: matching probabilities w^{k,m}, softmax over the M items ("vertical direction"): (B, K, M).

    ``temperature`` divides the logits first (vadlab's option, not in Eq. 1, which is temperature 1): below 1 the
    weights sharpen towards the nearest item. With unit vectors the logits are cosines in [-1, 1], so at
    temperature 1 and M = 10 no item can take more than e / (e + 9 / e) = 0.45 of the weight. A tensor temperature
    (a learned scalar) passes gradients."""
    logits = matching_logits(queries, items)  # (B, K, M)
    if not isinstance(temperature, Tensor) and temperature == 1.0:
        return torch.softmax(logits, dim=-1)  # (B, K, M), Eq. 1: sums to 1 over m
    return torch.softmax(logits / temperature, dim=-1)  # (B, K, M), Eq. 1 with the logits divided by temperature


def read(queries: Tensor, items: Tensor, temperature: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
    """MNAD Eq. 2: read features p_hat^k = sum_m w^{k,m} p_m. Returns (p_hat (B, K, C), w (B, K, M)).
    ``temperature``: see `read_weights` (1 is Eq. 1)."""
    w = read_weights(queries, items, temperature)  # (B, K, M), Eq. 1
    p_hat = torch.matmul(w, items)  # (B, K, M) @ (M, C) -> (B, K, C), Eq. 2
    return p_hat, w


def read_and_concat(queries: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """MNAD Sec. 3.1.2: concatenate [q, p_hat] along channels for the decoder. Returns ((B, K, 2C), w (B, K, M)).

    DREAM's Eq. 2 writes the read first (concat(read, q)); a caller wanting that order swaps the halves.
    """
    p_hat, w = read(queries, items)  # (B, K, C), (B, K, M), Eq. 2
    return torch.cat([queries, p_hat], dim=-1), w  # (B, K, 2C)


def _nearest_from_logits(logits: Tensor) -> tuple[Tensor, Tensor]:
    """MNAD Eq. 11, 13 on a (..., M) logit tensor: (nearest, second nearest) indices, each (...)."""
    if logits.shape[-1] < 2:
        raise ValueError(
            f"a second nearest item (Eq. 13) needs at least 2 memory items, got M={logits.shape[-1]}"
        )
    nearest = logits.argmax(dim=-1)  # (...), Eq. 11 (argmax of w == argmax of logits)
    masked = logits.scatter(-1, nearest.unsqueeze(-1), float("-inf"))  # (..., M), item p excluded
    second = masked.argmax(dim=-1)  # (...), Eq. 13: argmax over m != p
    return nearest, second


def nearest_items(queries: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """MNAD Eq. 11, 13: indices of the nearest item p and second nearest item n per query, each (B, K) int64.

    Raises ValueError when M < 2 (no second nearest item exists).
    """
    logits = matching_logits(queries, items)  # (B, K, M)
    return _nearest_from_logits(logits)  # (B, K), (B, K)


# ---------------------------------------------------------------------------------------------------------------
# MAAM-Net (Wang et al. 2023), Sec. 3.2.2
# ---------------------------------------------------------------------------------------------------------------


def cosine_similarity(queries: Tensor, items: Tensor, eps: float = 1e-12) -> Tensor:
    """MAAM Eq. 1: s = z^T m_i / (||z|| ||m_i||) for un-normalised queries and items: (B, K, M).

    Each vector is divided by max(||x||_2, eps), so a zero vector has similarity 0 with everything (instead of NaN).
    Invariant to positive rescaling of queries or items (the public MAAM code's similarity is not).
    """
    _check(queries, items)
    q_unit = torch.nn.functional.normalize(queries, p=2.0, dim=-1, eps=eps)  # (B, K, C), z / ||z||
    m_unit = torch.nn.functional.normalize(items, p=2.0, dim=-1, eps=eps)  # (M, C), m_i / ||m_i||
    return torch.matmul(q_unit, m_unit.transpose(0, 1))  # (B, K, C) @ (C, M) -> (B, K, M), Eq. 1


def hard_shrinkage(weights: Tensor, threshold: float, eps: float = 1e-12) -> Tensor:
    """MAAM Eq. 3 and the renormalisation after it, over the last dim: (..., N) -> (..., N).

    s_hat_i = max(s~_i - lambda, 0) * s~_i / (|s~_i - lambda| + eps)   (Eq. 3)
    w_i = s_hat_i / max(sum_j s_hat_j, 1e-12)                           (Sec. 3.2.2, below Eq. 3)

    Entries with s~_i <= lambda become exactly 0; the rest renormalise to sum 1. The clamp of the sum at 1e-12 is
    vadlab's (the paper and the public code divide by the bare sum): if no entry exceeds lambda (e.g. exactly uniform
    weights with lambda = 1/N) every weight is 0 instead of NaN, and the read is the zero vector.
    """
    shifted = weights - threshold  # (..., N), s~_i - lambda
    shrunk = torch.relu(shifted) * weights / (shifted.abs() + eps)  # (..., N), Eq. 3
    total = shrunk.sum(dim=-1, keepdim=True).clamp_min(1e-12)  # (..., 1), sum_j s_hat_j
    return shrunk / total  # (..., N), w_i: sums to 1 over i (or all 0)


def reference_similarity(queries: Tensor, items: Tensor, eps: float = 1e-12) -> Tensor:
    """The public MAAM-Net code's similarity (Wang et al.'s TF1 release, memory_module.py `cos_sim`), which is not
    Eq. 1's cosine: s = (z^T m_i + eps) / (sum_c z_c^2 m_ic^2 + eps): (B, K, M).

    Unbounded and not scale-invariant: scaling the items by a > 0 divides s by a, so its softmax can be far sharper
    (or flatter) than a cosine's, whose logits stay in [-1, 1]. Offered for Fig. 5 (`MAAMConfig.similarity`).
    """
    _check(queries, items)
    numerator = torch.matmul(queries, items.transpose(0, 1))  # (B, K, M), z^T m_i
    denominator = torch.matmul(queries.square(), items.square().transpose(0, 1))  # (B, K, M), sum_c z_c^2 m_ic^2
    return (numerator + eps) / (denominator + eps)


#: MAAM-Net's similarities by name: Eq. 1 ("cosine", the paper) and the public code's ("reference").
MAAM_SIMILARITIES = {"cosine": cosine_similarity, "reference": reference_similarity}


def shrinkage_read(
    queries: Tensor, items: Tensor, threshold: float, eps: float = 1e-12, similarity: str = "cosine"
) -> tuple[Tensor, Tensor]:
    """MAAM Eq. 1-4: similarity (Eq. 1's cosine, or the public code's with ``similarity="reference"``), softmax over
    the items, hard shrinkage, weighted sum of the items.

    Returns (z_hat (B, K, C), w (B, K, M)), both float32 (float64 for float64 inputs); ``threshold`` is lambda (the
    paper: 1/N). The addressing always runs in at least float32, with autocast switched off inside: under bf16
    autocast a softmax weight near lambda = 1/N (5e-4 at N = 2000) is only known to about 0.4 % (8 mantissa bits),
    so the hard threshold of Eq. 3 would keep or drop items at random. Differentiable in both queries and items
    (MAAM learns its items by backpropagation; nothing is detached).
    """
    if similarity not in MAAM_SIMILARITIES:
        raise ValueError(f"similarity {similarity!r}: choose one of {', '.join(MAAM_SIMILARITIES)}")
    dtype = torch.promote_types(torch.promote_types(queries.dtype, items.dtype), torch.float32)
    with torch.autocast(device_type=queries.device.type, enabled=False):
        queries, items = queries.to(dtype), items.to(dtype)
        s = MAAM_SIMILARITIES[similarity](queries, items)  # (B, K, M), Eq. 1 (or the code's)
        s_tilde = torch.softmax(s, dim=-1)  # (B, K, M), Eq. 2: softmax over the N items, no temperature
        w = hard_shrinkage(s_tilde, threshold, eps=eps)  # (B, K, M), Eq. 3 + renormalisation
        z_hat = torch.matmul(w, items)  # (B, K, M) @ (M, C) -> (B, K, C), Eq. 4: z_hat = w^T M (raw items)
    return z_hat, w
