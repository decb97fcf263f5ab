"""Plain Python-loop references for every op of ``vadlab.memory`` (tests and benchmarks compare against these).

Deliberately unvectorised: Python loops over samples, queries and items (a few vector ops per pair),
written straight from the papers' equations, so that a reader can check each line against the paper. Slow on
purpose; use small inputs. tests/test_memory.py checks the vectorised ops against them and
benchmarks/bench_memory.py times the vectorised ops against them. CPU tensors only. ``kmeans_init`` has no loop
reference: it is a call to sklearn's KMeans, and the tests compare it with sklearn directly.

MNAD: Park et al., CVPR 2020. DREAM: Guo et al. MAAM: Wang et al., PR 2023. STD: Chang et al., PR 2021.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "unit",
    "make",
    "ref_logits",
    "ref_read_weights",
    "ref_read",
    "ref_nearest",
    "ref_update",
    "ref_weighted_regular_score",
    "ref_compactness",
    "ref_separateness",
    "ref_feature_distance",
    "ref_cosine_similarity",
    "ref_hard_shrinkage",
    "ref_shrinkage_read",
    "ref_entropy",
    "ref_latent_margin",
    "ref_triplet",
    "ref_soft_assignment",
    "ref_cluster_distance",
    "ref_cluster_loss",
]

# ---------------------------------------------------------------------------------------------------------------
# Input helpers
# ---------------------------------------------------------------------------------------------------------------


def unit(x):
    """L2-normalise along the last dim."""
    return torch.nn.functional.normalize(x, dim=-1)


def make(B, K, M, C, dtype=torch.float64, seed=0, device="cpu"):
    """Random unit queries (B, K, C) and unit items (M, C), drawn in float64 from ``seed`` and then cast."""
    g = torch.Generator().manual_seed(seed)
    q = unit(torch.randn(B, K, C, generator=g, dtype=torch.float64)).to(dtype=dtype, device=device)
    items = unit(torch.randn(M, C, generator=g, dtype=torch.float64)).to(dtype=dtype, device=device)
    return q, items


# ---------------------------------------------------------------------------------------------------------------
# MNAD Eq. 1-2, 11, 13 (also DREAM Eq. 1-2)
# ---------------------------------------------------------------------------------------------------------------


def ref_logits(q, items):
    """p_m^T q_k for every b, k, m."""
    B, K, _ = q.shape
    M = items.shape[0]
    out = torch.empty(B, K, M, dtype=q.dtype)
    for b in range(B):
        for k in range(K):
            for m in range(M):
                out[b, k, m] = torch.dot(items[m], q[b, k])
    return out


def ref_read_weights(q, items):
    """MNAD Eq. 1."""
    B, K, _ = q.shape
    M = items.shape[0]
    s = ref_logits(q, items)
    w = torch.empty(B, K, M, dtype=q.dtype)
    for b in range(B):
        for k in range(K):
            den = sum(math.exp(float(s[b, k, m2])) for m2 in range(M))
            for m in range(M):
                w[b, k, m] = math.exp(float(s[b, k, m])) / den
    return w


def ref_read(q, items):
    """MNAD Eq. 2."""
    B, K, C = q.shape
    M = items.shape[0]
    w = ref_read_weights(q, items)
    p_hat = torch.zeros(B, K, C, dtype=q.dtype)
    for b in range(B):
        for k in range(K):
            for m in range(M):
                p_hat[b, k] += w[b, k, m] * items[m]
    return p_hat, w


def _ref_nearest_one(s_row):
    """MNAD Eq. 11, 13 for one query: (p, n), ties to the lowest index; n is None when M == 1."""
    M = len(s_row)
    p = 0
    for m in range(1, M):
        if s_row[m] > s_row[p]:
            p = m
    n = None
    for m in range(M):
        if m != p and (n is None or s_row[m] > s_row[n]):
            n = m
    return p, n


def ref_nearest(q, items):
    """MNAD Eq. 11, 13."""
    B, K, _ = q.shape
    s = ref_logits(q, items)
    p_idx = torch.empty(B, K, dtype=torch.long)
    n_idx = torch.empty(B, K, dtype=torch.long)
    for b in range(B):
        for k in range(K):
            p, n = _ref_nearest_one([float(x) for x in s[b, k]])
            if n is None:
                raise ValueError("M=1: no second nearest item")
            p_idx[b, k], n_idx[b, k] = p, n
    return p_idx, n_idx


# ---------------------------------------------------------------------------------------------------------------
# MNAD Eq. 3-7, DREAM Eq. 3-4
# ---------------------------------------------------------------------------------------------------------------


def ref_update(q, items, frame_mask=None, max_renorm=True):
    """MNAD Eq. 3-5 (max_renorm) or DREAM Eq. 3-4 (no Eq. 5) with the batch's allowed queries as one set.

    Eq. 5's max is over U^m only.
    """
    B, K, _ = q.shape
    M = items.shape[0]
    s = ref_logits(q, items)
    pool = [(b, k) for b in range(B) if frame_mask is None or bool(frame_mask[b]) for k in range(K)]
    nearest = {(b, k): _ref_nearest_one([float(x) for x in s[b, k]])[0] for (b, k) in pool}
    new = items.clone()
    for m in range(M):
        U = [bk for bk in pool if nearest[bk] == m]
        if not U:
            continue  # no assigned query: the item stays as it was
        den = sum(math.exp(float(s[b, k, m])) for (b, k) in pool)  # MNAD Eq. 4, softmax over the queries
        v = {(b, k): math.exp(float(s[b, k, m])) / den for (b, k) in U}
        vmax = max(v.values()) if max_renorm else 1.0  # MNAD Eq. 5, max over k in U^m (DREAM: no division)
        acc = items[m].clone()
        for (b, k) in U:
            acc = acc + (v[(b, k)] / vmax) * q[b, k]  # MNAD Eq. 3 / DREAM Eq. 3-4
        new[m] = acc / torch.linalg.vector_norm(acc)
    return new


def ref_weighted_regular_score(pred, target):
    """MNAD Eq. 6-7, per frame."""
    B, _, H, W = pred.shape
    out = torch.empty(B, dtype=pred.dtype)
    for b in range(B):
        errs = [float(torch.linalg.vector_norm(pred[b, :, i, j] - target[b, :, i, j]))
                for i in range(H) for j in range(W)]
        den = sum(1 - math.exp(-e) for e in errs)
        out[b] = 0.0 if den == 0 else sum((1 - math.exp(-e)) / den * e for e in errs)
    return out


# ---------------------------------------------------------------------------------------------------------------
# MNAD Eq. 10-14, DREAM Eq. 7, 8, 11
# ---------------------------------------------------------------------------------------------------------------


def _ref_dist(q, items, b, k, m, squared=False):
    d = torch.linalg.vector_norm(q[b, k] - items[m])
    return d * d if squared else d


def _ref_pn(q, items):
    s = ref_logits(q.detach(), items.detach())
    B, K, _ = q.shape
    ps = [[0] * K for _ in range(B)]
    ns = [[None] * K for _ in range(B)]
    for b in range(B):
        for k in range(K):
            ps[b][k], ns[b][k] = _ref_nearest_one([float(x) for x in s[b, k]])
    return ps, ns


def _ref_selected(B, query_mask):
    return [b for b in range(B) if query_mask is None or bool(query_mask[b])]


def ref_compactness(q, items, squared=False, query_mask=None):
    """MNAD Eq. 10-11 / DREAM Eq. 7, mean over the (selected samples') queries instead of sum."""
    B, K, _ = q.shape
    p_idx, _ = _ref_pn(q, items)
    sel = _ref_selected(B, query_mask)
    total = 0.0
    for b in sel:
        for k in range(K):
            total = total + _ref_dist(q, items, b, k, int(p_idx[b][k]), squared)
    return torch.as_tensor(total / (len(sel) * K)) if sel else torch.zeros((), dtype=q.dtype)


def ref_separateness(q, items, margin, squared=False, query_mask=None):
    """MNAD Eq. 12-13 / DREAM Eq. 8, mean over the (selected samples') queries instead of sum."""
    B, K, _ = q.shape
    if items.shape[0] < 2:
        raise ValueError("M=1: no second nearest item")
    ps, ns = _ref_pn(q, items)
    sel = _ref_selected(B, query_mask)
    total = 0.0
    for b in sel:
        for k in range(K):
            t = _ref_dist(q, items, b, k, ps[b][k], squared) - _ref_dist(q, items, b, k, ns[b][k], squared) + margin
            total = total + torch.clamp(t, min=0)
    return torch.as_tensor(total / (len(sel) * K)) if sel else torch.zeros((), dtype=q.dtype)


def ref_feature_distance(q, items, squared=False):
    """MNAD Eq. 14 / DREAM Eq. 11."""
    B, K, _ = q.shape
    ps, _ = _ref_pn(q, items)
    out = []
    for b in range(B):
        out.append(sum(_ref_dist(q, items, b, k, ps[b][k], squared) for k in range(K)) / K)
    return torch.stack([torch.as_tensor(x, dtype=q.dtype) for x in out])


# ---------------------------------------------------------------------------------------------------------------
# MAAM Eq. 1-4, 8, 9
# ---------------------------------------------------------------------------------------------------------------


def _ref_cos(x, y, eps=1e-12):
    """x^T y / (max(||x||, eps) max(||y||, eps)) for two vectors (C,). Keeps autograd."""
    nx = torch.clamp(torch.linalg.vector_norm(x), min=eps)
    ny = torch.clamp(torch.linalg.vector_norm(y), min=eps)
    return torch.dot(x, y) / (nx * ny)


def ref_cosine_similarity(q, items, eps=1e-12):
    """MAAM Eq. 1: s_i = z^T m_i / (||z|| ||m_i||) for every b, k, m (values only, no gradient)."""
    B, K, _ = q.shape
    M = items.shape[0]
    out = torch.empty(B, K, M, dtype=q.dtype)
    for b in range(B):
        for k in range(K):
            for m in range(M):
                out[b, k, m] = float(_ref_cos(q[b, k], items[m], eps))
    return out


def _ref_shrink_row(row, threshold, eps=1e-12):
    """MAAM Eq. 3 on one weight vector (a list of scalars), then the renormalisation to a unit sum."""
    hat = [max(s - threshold, 0.0) * s / (abs(s - threshold) + eps) for s in row]  # Eq. 3
    total = max(sum(hat), 1e-12)
    return [h / total for h in hat]  # w_i = s_hat_i / sum_j s_hat_j


def ref_hard_shrinkage(weights, threshold, eps=1e-12):
    """MAAM Eq. 3 + renormalisation over the last dim of any (..., N) tensor."""
    rows = weights.reshape(-1, weights.shape[-1])
    out = torch.empty_like(rows)
    for r in range(rows.shape[0]):
        out[r] = torch.tensor(_ref_shrink_row([float(x) for x in rows[r]], threshold, eps), dtype=weights.dtype)
    return out.reshape(weights.shape)


def ref_shrinkage_read(q, items, threshold, eps=1e-12):
    """MAAM Eq. 1-4 for every query: cosine, softmax over items, hard shrinkage, weighted sum. Keeps autograd."""
    B, K, C = q.shape
    M = items.shape[0]
    reads, weights = [], []
    for b in range(B):
        for k in range(K):
            s = [_ref_cos(q[b, k], items[m]) for m in range(M)]  # Eq. 1 (cosine, eps 1e-12)
            e = [torch.exp(s_m) for s_m in s]
            den = sum(e)
            s_tilde = [e_m / den for e_m in e]  # Eq. 2
            hat = [torch.relu(st - threshold) * st / (torch.abs(st - threshold) + eps) for st in s_tilde]  # Eq. 3
            total = torch.clamp(sum(hat), min=1e-12)
            w = [h / total for h in hat]  # w_i = s_hat_i / sum_j s_hat_j
            z_hat = sum(w[m] * items[m] for m in range(M))  # Eq. 4
            reads.append(z_hat)
            weights.append(torch.stack(w))
    return torch.stack(reads).reshape(B, K, C), torch.stack(weights).reshape(B, K, M)


def ref_entropy(weights, eps=1e-12, item_reduction="sum"):
    """MAAM Eq. 8 per query (over the last dim), averaged over queries."""
    rows = weights.reshape(-1, weights.shape[-1])
    N = rows.shape[1]
    total = 0.0
    for r in range(rows.shape[0]):
        h = sum(-rows[r, i] * torch.log(rows[r, i] + eps) for i in range(N))  # Eq. 8
        total = total + (h if item_reduction == "sum" else h / N)
    return total / rows.shape[0]


def ref_latent_margin(read, queries, margin, eps=1e-12):
    """MAAM Eq. 9 per query, averaged over queries."""
    C = read.shape[-1]
    rr, qq = read.reshape(-1, C), queries.reshape(-1, C)
    total = 0.0
    for i in range(rr.shape[0]):
        cos = _ref_cos(rr[i], qq[i], eps)
        total = total + torch.clamp(torch.abs(cos) - margin, min=0)  # Eq. 9
    return total / rr.shape[0]


# ---------------------------------------------------------------------------------------------------------------
# DREAM Eq. 5
# ---------------------------------------------------------------------------------------------------------------


def ref_triplet(anchor, positive, negative, margin, squared=True):
    """DREAM Eq. 5 per triplet, averaged over the batch (squared=False: unsquared distances)."""
    B = anchor.shape[0]
    total = 0.0
    for b in range(B):
        dp = torch.dot(anchor[b] - positive[b], anchor[b] - positive[b])  # ||f_a - f_p||^2
        dn = torch.dot(anchor[b] - negative[b], anchor[b] - negative[b])  # ||f_a - f_n||^2
        if not squared:
            dp, dn = torch.sqrt(dp), torch.sqrt(dn)
        total = total + torch.clamp(dp - dn + margin, min=0)  # Eq. 5
    return total / B


# ---------------------------------------------------------------------------------------------------------------
# STD Eq. 10-11
# ---------------------------------------------------------------------------------------------------------------


def _ref_cluster_one(r_vec, centres, alpha):
    """STD Eq. 10 for one representation: (a list of K soft assignments, D)."""
    K = centres.shape[0]
    dist = [float(torch.linalg.vector_norm(r_vec - centres[k])) for k in range(K)]  # ||r - c_k||_2
    d_min = min(dist)  # shift inside the exp for stability (cancels in the softmax)
    e = [math.exp(-alpha * (dk - d_min)) for dk in dist]
    a = [ek / sum(e) for ek in e]  # soft assignment on the plain distance
    return a, sum(a[k] * dist[k] ** 2 for k in range(K))  # weighted squared distance


def ref_soft_assignment(r, centres, alpha):
    """STD Eq. 10, first factor, for every n, k."""
    out = torch.empty(r.shape[0], centres.shape[0], dtype=r.dtype)
    for n in range(r.shape[0]):
        out[n] = torch.tensor(_ref_cluster_one(r[n], centres, alpha)[0], dtype=r.dtype)
    return out


def ref_cluster_distance(r, centres, alpha):
    """STD Eq. 10 for every n."""
    return torch.tensor([_ref_cluster_one(r[n], centres, alpha)[1] for n in range(r.shape[0])], dtype=r.dtype)


def ref_cluster_loss(r_map, centres, alpha):
    """STD Eq. 11: sum over the locations of each clip, mean over the clips."""
    B, _, H, W = r_map.shape
    per_clip = []
    for b in range(B):
        per_clip.append(sum(_ref_cluster_one(r_map[b, :, h, w], centres, alpha)[1] for h in range(H) for w in range(W)))
    return torch.tensor(sum(per_clip) / B, dtype=r_map.dtype)
