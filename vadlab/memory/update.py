"""Memory update rules without gradients (MNAD Eq. 3-5, DREAM Eq. 3-4) and MNAD's update gate (Eq. 6-7).

Choices (where the papers leave room or the public code departs from them)
--------------------------------------------------------------------------
1. Batched update (MNAD Eq. 3-5): the B*K queries of a batch are treated as ONE set (one query map of B*K queries):
   U^m is the set of all queries in the batch whose nearest item is m, the softmax of Eq. 4 runs over all B*K
   queries, the max of Eq. 5 over U^m, and the items are updated once. Why: Eq. 5 divides by a max of the same
   softmax, so the softmax denominator cancels and ``v^{k,m} = exp(p_m^T q_k - max_{k' in U^m} p_m^T q_k')``;
   the softmax's scope only matters through U^m. Pooling the frames is exactly Eq. 3-5 applied to the
   concatenated query map, it is one vectorised step, and it does not depend on the order of frames in the batch.
   Sequential per-frame updates (frame t+1 sees the items written by frame t) cannot be vectorised and make the
   result depend on how a batch is ordered; at test time with batch size 1, the usual setting, both agree.
2. MNAD Eq. 5's max is over the queries assigned to item m (k in U^m), as the paper writes it. The public MNAD code
   divides by the max over ALL queries, which shrinks the update of every item whose best-matching query is
   assigned elsewhere; we do not copy that (tests/test_memory.py has a test that catches it).
3. DREAM (Eq. 3-4, ``max_renorm=False``) is the same rule without Eq. 5: v^{k,m} is the softmax over the whole
   query set, so with many queries each v is small and the items drift slowly. The set is again all allowed
   queries of the batch (DREAM's U^N: the normality queries of the normal samples, selected with ``frame_mask``).
   With ``max_renorm=False`` the softmax scope matters: pooling B frames is not the same as B per-frame updates.
4. MNAD Eq. 7's denominator sums over the pixels of that frame only.
5. ``assign="balanced"`` (vadlab's option against memory collapse, in neither paper): U^m comes from a
   usage-balanced assignment instead of the nearest item: a few Sinkhorn-Knopp iterations on exp(p_m^T q_k / tau)
   over the allowed queries make every item's column carry 1/M of the mass and every query's row 1/N (SwAV's
   equipartition), and each query goes to the item of largest balanced mass. The weights v^{k,m} of the chosen
   item are those of the rule (Eq. 4, with or without Eq. 5). Items then follow the whole query distribution even
   when one item is nearest to every query.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vadlab.memory.addressing import _check

__all__ = ["update", "balanced_assignment", "weighted_regular_score"]


def balanced_assignment(logits: Tensor, allowed: Tensor, temperature: float = 0.05, iterations: int = 3) -> Tensor:
    """Module choice 5: the item of each of N queries (N,) from Sinkhorn-Knopp on exp(logits / temperature)
    (N, M), rows of queries not ``allowed`` (N,) bool left out of the balance (their item is meaningless)."""
    n_allowed = allowed.sum().clamp_min(1).to(logits.dtype)  # tensor: no host sync
    m = logits.shape[1]
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
    log_q = torch.where(allowed.unsqueeze(-1), logits / temperature, neg_inf)  # (N, M)
    for _ in range(iterations):
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(m)  # columns 1/M
        row = torch.logsumexp(log_q, dim=1, keepdim=True)  # (N, 1)
        log_q = torch.where(allowed.unsqueeze(-1), log_q - row - torch.log(n_allowed), neg_inf)  # rows 1/N
    return torch.nan_to_num(log_q, nan=float("-inf")).argmax(dim=-1)  # (N,)


@torch.no_grad()
def update(queries: Tensor, items: Tensor, frame_mask: Tensor | None = None, *, max_renorm: bool = True,
           assign: str = "nearest", temperature: float = 0.05) -> Tensor:
    """MNAD Eq. 3-5 (``max_renorm=True``) or DREAM Eq. 3-4 (``max_renorm=False``): the updated items (M, C).

    The inputs are not modified. All B*K queries of the batch form one set (module docstring, choice 1).
    ``frame_mask`` (B,) bool selects the frames allowed to update the memory; MNAD at test time passes
    ``weighted_regular_score(pred, target) <= gamma`` (Eq. 6-7: a frame scoring above gamma is treated as abnormal
    and left out), DREAM passes its routing (normal samples for P^N, abnormal ones for P^A). Items with no assigned
    query are returned exactly as they were; if no frame is allowed, the items are returned unchanged. Queries are
    cast to the items' dtype (the memory's storage dtype, e.g. float32 under AMP). ``assign="balanced"`` takes
    U^m from a usage-balanced assignment at ``temperature`` (module choice 5; vadlab's, in neither paper).
    """
    if assign not in ("nearest", "balanced"):
        raise ValueError(f"assign must be 'nearest' or 'balanced', got {assign!r}")
    _check(queries, items)
    B, K, C = queries.shape
    M = items.shape[0]
    q = queries.reshape(B * K, C).to(items.dtype)  # (N, C), N = B*K: the batch as one query set
    logits = torch.matmul(q, items.transpose(0, 1))  # (N, M), p_m^T q_k
    nearest = logits.argmax(dim=-1)  # (N,), MNAD Eq. 11: U^m = {k : nearest[k] == m}

    if frame_mask is None:
        allowed = torch.ones(B * K, dtype=torch.bool, device=q.device)  # (N,)
    else:
        if frame_mask.shape != (B,):
            raise ValueError(f"frame_mask must have shape (B,) = ({B},), got {tuple(frame_mask.shape)}")
        allowed = frame_mask.to(device=q.device, dtype=torch.bool).repeat_interleave(K)  # (N,)
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
    logits = torch.where(allowed.unsqueeze(-1), logits, neg_inf)  # (N, M), excluded queries leave the set
    if assign == "balanced":  # module choice 5: U^m from the usage-balanced assignment, not the nearest item
        nearest = balanced_assignment(logits, allowed, temperature)

    # MNAD Eq. 4 / DREAM's v_km: softmax over the queries ("horizontal direction"), in log space for stability.
    log_v = logits - torch.logsumexp(logits, dim=0, keepdim=True)  # (N, M), log v^{k,m}
    log_v_own = log_v.gather(1, nearest.unsqueeze(1)).squeeze(1)  # (N,), log v^{k,m} for m = nearest item of k
    log_v_own = torch.where(allowed, log_v_own, neg_inf)  # (N,), excluded queries are in no U^m
    if max_renorm:
        # MNAD Eq. 5: divide by the max of v over k' in U^m (the queries assigned to m, NOT all queries).
        seg_max = torch.full((M,), float("-inf"), dtype=q.dtype, device=q.device)  # (M,)
        seg_max = seg_max.scatter_reduce(0, nearest, log_v_own, reduce="amax", include_self=True)  # (M,)
        weight = torch.exp(log_v_own - seg_max[nearest])  # (N,), Eq. 5: v^{k,m} / max_{k' in U^m} v^{k',m}
    else:
        weight = torch.exp(log_v_own)  # (N,), DREAM Eq. 3-4: v^{k,m} itself, no Eq. 5 division
    weight = torch.where(allowed, weight, torch.zeros_like(weight))  # (N,), excluded queries: no contribution

    # MNAD Eq. 3 / DREAM Eq. 3-4: p_m <- f(p_m + sum_{k in U^m} v^{k,m} q_k), f = L2 normalisation.
    delta = torch.zeros_like(items).index_add_(0, nearest, weight.unsqueeze(-1) * q)  # (M, C)
    count = torch.zeros(M, dtype=q.dtype, device=q.device).index_add_(0, nearest, allowed.to(q.dtype))  # (M,)
    new_items = torch.nn.functional.normalize(items + delta, p=2.0, dim=-1)  # (M, C), Eq. 3
    return torch.where((count > 0).unsqueeze(-1), new_items, items)  # (M, C), unassigned items kept as they were


def weighted_regular_score(pred: Tensor, target: Tensor, *, squared: bool = False) -> Tensor:
    """MNAD Eq. 6-7: the weighted regular score E_t per frame, (B,), for images (B, Ch, H, W).

    ``squared=False``: Eq. 6-7 as written, ||.||_2 over channels at each pixel; Eq. 7's denominator sums over the
    pixels of that frame. ``squared=True``: the public code's ``point_score`` (cvlab-yonsei/MNAD utils.py), on which
    the paper's gamma was tuned: e = (I_hat - I)^2 per pixel *and channel*, w = 1 - exp(-e), sum(w e) / sum(w) over
    the frame. A perfect reconstruction (all errors 0) scores 0 either way.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(
            f"pred and target must have the same shape (B, Ch, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if squared:
        err = (pred - target).pow(2)  # (B, Ch, H, W), per-element squared error
    else:
        err = torch.linalg.vector_norm(pred - target, ord=2, dim=1)  # (B, H, W), ||I_hat^{ij} - I^{ij}||_2
    dims = tuple(range(1, err.dim()))
    raw = -torch.expm1(-err)  # 1 - exp(-err), Eq. 7 numerator
    denom = raw.sum(dim=dims)  # (B,), Eq. 7 denominator over the frame
    num = (raw * err).sum(dim=dims)  # (B,), Eq. 6 with the weights' numerator
    return num / denom.clamp_min(torch.finfo(denom.dtype).tiny)  # (B,), Eq. 6 (0 when err == 0 everywhere)
