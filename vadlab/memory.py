"""Memory operations of MNAD (Park et al., "Learning Memory-guided Normality", CVPR 2020).

Pure, batched tensor functions: no module state, no Python loop over frames, queries or items, no host sync
(no ``.item()``, no boolean-mask indexing), so they run unchanged on CPU and CUDA, in float32 and float64.

Conventions
-----------
* ``queries``: (B, K, C) -- B frames, K = H*W queries per frame (a query map ``q_t`` flattened over H, W), C channels.
  A model holding a (B, C, H, W) map passes ``q.flatten(2).transpose(1, 2)``.
* ``items``: (M, C) -- the M memory items ``p_m``.
* Both are expected to be L2-normalised along C (the encoder ends in an L2 norm; Eq. 3 re-normalises the items),
  so ``p_m^T q_k`` is the cosine similarity of Eq. 1. These functions take them as given and never renormalise
  the inputs silently: unnormalised inputs give dot products, not cosines. Only ``update`` normalises, and only
  its output, because Eq. 3 says so.
* Equation numbers refer to the paper (Sec. 3.1.2, 3.2, 3.3).

Choices (where the paper leaves room or the public code departs from it)
------------------------------------------------------------------------
1. Batched update (Eq. 3-5): the B*K queries of a batch are treated as ONE set (one query map of B*K queries):
   U^m is the set of all queries in the batch whose nearest item is m, the softmax of Eq. 4 runs over all B*K
   queries, the max of Eq. 5 over U^m, and the items are updated once. Why: Eq. 5 divides by a max of the same
   softmax, so the softmax denominator cancels and ``v^{k,m} = exp(p_m^T q_k - max_{k' in U^m} p_m^T q_k')``;
   the softmax's scope only matters through U^m. Pooling the frames is exactly Eq. 3-5 applied to the
   concatenated query map, it is one vectorised step, and it does not depend on the order of frames in the batch.
   Sequential per-frame updates (frame t+1 sees the items written by frame t) cannot be vectorised and make the
   result depend on how a batch is ordered; at test time with batch size 1, the usual setting, both agree.
2. Eq. 5's max is over the queries assigned to item m (k in U^m), as the paper writes it. The public MNAD code
   divides by the max over ALL queries, which shrinks the update of every item whose best-matching query is
   assigned elsewhere; we do not copy that (tests/test_memory.py has a test that catches it).
3. Losses (Eq. 10, 12) use the MEAN over the B*K queries instead of the sum, so lambda_c and lambda_s do not
   scale with batch size or feature-map size; the distances are the unsquared L2 norms the paper writes (the
   public code uses MSE). The items are detached in the losses: gradients flow into the queries only, the items
   being updated by Eq. 3 "without any supervisory signals".
4. The nearest item p = argmax_m w^{k,m} (Eq. 11); softmax is monotone, so this is argmax of the logits.
   The second nearest n (Eq. 13) is the argmax with p excluded. Ties go to the lowest index (``argmax``).
5. Eq. 7's denominator sums over the pixels of that frame only.
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
    "update",
    "weighted_regular_score",
    "compactness_loss",
    "separateness_loss",
    "feature_distance",
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


def matching_logits(queries: Tensor, items: Tensor) -> Tensor:
    """Correlation map p_m^T q_k (cosine similarity for unit inputs, Eq. 1's exponent): (B, K, M)."""
    _check(queries, items)
    return torch.matmul(queries, items.transpose(0, 1))  # (B, K, C) @ (C, M) -> (B, K, M)


def read_weights(queries: Tensor, items: Tensor) -> Tensor:
    """Eq. 1: matching probabilities w^{k,m}, softmax over the M items ("vertical direction"): (B, K, M)."""
    logits = matching_logits(queries, items)  # (B, K, M)
    return torch.softmax(logits, dim=-1)  # (B, K, M), Eq. 1: sums to 1 over m


def read(queries: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 2: read features p_hat^k = sum_m w^{k,m} p_m. Returns (p_hat (B, K, C), w (B, K, M))."""
    w = read_weights(queries, items)  # (B, K, M), Eq. 1
    p_hat = torch.matmul(w, items)  # (B, K, M) @ (M, C) -> (B, K, C), Eq. 2
    return p_hat, w


def read_and_concat(queries: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """Sec. 3.1.2: concatenate [q, p_hat] along channels for the decoder. Returns ((B, K, 2C), w (B, K, M))."""
    p_hat, w = read(queries, items)  # (B, K, C), (B, K, M), Eq. 2
    return torch.cat([queries, p_hat], dim=-1), w  # (B, K, 2C)


def _nearest_from_logits(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 11, 13 on a (..., M) logit tensor: (nearest, second nearest) indices, each (...)."""
    if logits.shape[-1] < 2:
        raise ValueError(
            f"a second nearest item (Eq. 13) needs at least 2 memory items, got M={logits.shape[-1]}"
        )
    nearest = logits.argmax(dim=-1)  # (B, K), Eq. 11 (argmax of w == argmax of logits)
    masked = logits.scatter(-1, nearest.unsqueeze(-1), float("-inf"))  # (B, K, M), item p excluded
    second = masked.argmax(dim=-1)  # (B, K), Eq. 13: argmax over m != p
    return nearest, second


def nearest_items(queries: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 11, 13: indices of the nearest item p and second nearest item n per query, each (B, K) int64.

    Raises ValueError when M < 2 (no second nearest item exists).
    """
    logits = matching_logits(queries, items)  # (B, K, M)
    return _nearest_from_logits(logits)  # (B, K), (B, K)


@torch.no_grad()
def update(queries: Tensor, items: Tensor, frame_mask: Tensor | None = None) -> Tensor:
    """Eq. 3-5: return the updated items (M, C); the inputs are not modified.

    All B*K queries of the batch form one set (module docstring, choice 1). ``frame_mask`` (B,) bool selects the
    frames allowed to update the memory; at test time pass ``weighted_regular_score(pred, target) <= gamma``
    (Eq. 6-7: a frame scoring above gamma is treated as abnormal and left out). Items with no assigned query are
    returned exactly as they were; if no frame is allowed, the items are returned unchanged. Queries are cast to
    the items' dtype (the memory's storage dtype, e.g. float32 under AMP).
    """
    _check(queries, items)
    B, K, C = queries.shape
    M = items.shape[0]
    q = queries.reshape(B * K, C).to(items.dtype)  # (N, C), N = B*K: the batch as one query set
    logits = torch.matmul(q, items.transpose(0, 1))  # (N, M), p_m^T q_k
    nearest = logits.argmax(dim=-1)  # (N,), Eq. 11: U^m = {k : nearest[k] == m}

    if frame_mask is None:
        allowed = torch.ones(B * K, dtype=torch.bool, device=q.device)  # (N,)
    else:
        if frame_mask.shape != (B,):
            raise ValueError(f"frame_mask must have shape (B,) = ({B},), got {tuple(frame_mask.shape)}")
        allowed = frame_mask.to(device=q.device, dtype=torch.bool).repeat_interleave(K)  # (N,)
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
    logits = torch.where(allowed.unsqueeze(-1), logits, neg_inf)  # (N, M), excluded queries leave the set

    # Eq. 4: softmax over the queries ("horizontal direction"), in log space for stability.
    log_v = logits - torch.logsumexp(logits, dim=0, keepdim=True)  # (N, M), log v^{k,m}
    log_v_own = log_v.gather(1, nearest.unsqueeze(1)).squeeze(1)  # (N,), log v^{k,m} for m = nearest item of k
    log_v_own = torch.where(allowed, log_v_own, neg_inf)  # (N,), excluded queries are in no U^m
    # Eq. 5: divide by the max of v over k' in U^m (the queries assigned to m, NOT all queries).
    seg_max = torch.full((M,), float("-inf"), dtype=q.dtype, device=q.device)  # (M,)
    seg_max = seg_max.scatter_reduce(0, nearest, log_v_own, reduce="amax", include_self=True)  # (M,)
    weight = torch.exp(log_v_own - seg_max[nearest])  # (N,), Eq. 5: v^{k,m} / max_{k' in U^m} v^{k',m}
    weight = torch.where(allowed, weight, torch.zeros_like(weight))  # (N,), excluded queries: no contribution

    # Eq. 3: p_m <- f(p_m + sum_{k in U^m} v^{k,m} q_k), f = L2 normalisation.
    delta = torch.zeros_like(items).index_add_(0, nearest, weight.unsqueeze(-1) * q)  # (M, C)
    count = torch.zeros(M, dtype=q.dtype, device=q.device).index_add_(0, nearest, allowed.to(q.dtype))  # (M,)
    new_items = torch.nn.functional.normalize(items + delta, p=2.0, dim=-1)  # (M, C), Eq. 3
    return torch.where((count > 0).unsqueeze(-1), new_items, items)  # (M, C), unassigned items kept as they were


def weighted_regular_score(pred: Tensor, target: Tensor) -> Tensor:
    """Eq. 6-7: the weighted regular score E_t per frame, (B,), for images (B, Ch, H, W).

    ||.||_2 is over channels at each pixel; Eq. 7's denominator sums over the pixels of that frame. A perfect
    reconstruction (all errors 0) scores 0.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"pred and target must have the same shape (B, Ch, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    err = torch.linalg.vector_norm(pred - target, ord=2, dim=1)  # (B, H, W), ||I_hat^{ij} - I^{ij}||_2
    raw = -torch.expm1(-err)  # (B, H, W), 1 - exp(-err), Eq. 7 numerator
    denom = raw.sum(dim=(1, 2))  # (B,), Eq. 7 denominator over the frame's pixels
    num = (raw * err).sum(dim=(1, 2))  # (B,), Eq. 6 with the weights' numerator
    return num / denom.clamp_min(torch.finfo(denom.dtype).tiny)  # (B,), Eq. 6 (0 when err == 0 everywhere)


def _nearest_distance(queries: Tensor, items: Tensor, nearest: Tensor) -> Tensor:
    """||q_k - p_p||_2 per query (B, K) for the given item indices (B, K)."""
    p = items[nearest]  # (B, K, C), p_p for each query
    return torch.linalg.vector_norm(queries - p, ord=2, dim=-1)  # (B, K)


def compactness_loss(queries: Tensor, items: Tensor) -> Tensor:
    """Eq. 10-11: mean over the B*K queries of ||q_k - p_p||_2 (unsquared), scalar. Items are detached."""
    items = items.detach()  # (M, C), items get no gradient (updated by Eq. 3 only)
    logits = matching_logits(queries, items)  # (B, K, M)
    nearest = logits.argmax(dim=-1)  # (B, K), Eq. 11
    return _nearest_distance(queries, items, nearest).mean()  # scalar, Eq. 10 with mean instead of sum


def separateness_loss(queries: Tensor, items: Tensor, margin: float) -> Tensor:
    """Eq. 12-13: mean over queries of [||q - p_p||_2 - ||q - p_n||_2 + margin]_+, scalar. Items are detached.

    Raises ValueError when M < 2 (no second nearest item).
    """
    items = items.detach()  # (M, C), items get no gradient (updated by Eq. 3 only)
    logits = matching_logits(queries, items)  # (B, K, M)
    nearest, second = _nearest_from_logits(logits)  # (B, K), (B, K), Eq. 11, 13
    d_pos = _nearest_distance(queries, items, nearest)  # (B, K), ||q - p_p||_2
    d_neg = _nearest_distance(queries, items, second)  # (B, K), ||q - p_n||_2
    return torch.relu(d_pos - d_neg + margin).mean()  # scalar, Eq. 12 with mean instead of sum


def feature_distance(queries: Tensor, items: Tensor) -> Tensor:
    """Eq. 14: D(q_t, p) = (1/K) sum_k ||q_t^k - p_p||_2 per frame, (B,). Not detached (a score, not a loss)."""
    logits = matching_logits(queries, items)  # (B, K, M)
    nearest = logits.argmax(dim=-1)  # (B, K), Eq. 11
    return _nearest_distance(queries, items, nearest).mean(dim=-1)  # (B,), Eq. 14
