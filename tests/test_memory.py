"""Tests for vadlab.memory against plain loop references written straight from the MNAD equations.

The ``ref_*`` functions below are deliberately unvectorised (Python loops over b, k, m) and are also what
benchmarks/bench_memory.py times the vectorised ops against.
"""

from __future__ import annotations

import math

import pytest
import torch

from vadlab import memory as mem

# ---------------------------------------------------------------------------------------------------------------
# Loop references (Eq. numbers from Park et al., CVPR 2020). Not vectorised on purpose.
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
    """Eq. 1."""
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
    """Eq. 2."""
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
    """Eq. 11, 13 for one query: (p, n), ties to the lowest index; n is None when M == 1."""
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
    """Eq. 11, 13."""
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


def ref_update(q, items, frame_mask=None):
    """Eq. 3-5 with the batch's allowed queries as one set; Eq. 5's max over U^m only."""
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
        den = sum(math.exp(float(s[b, k, m])) for (b, k) in pool)  # Eq. 4, softmax over the queries
        v = {(b, k): math.exp(float(s[b, k, m])) / den for (b, k) in U}
        vmax = max(v.values())  # Eq. 5, max over k in U^m
        acc = items[m].clone()
        for (b, k) in U:
            acc = acc + (v[(b, k)] / vmax) * q[b, k]  # Eq. 3
        new[m] = acc / torch.linalg.vector_norm(acc)
    return new


def ref_weighted_regular_score(pred, target):
    """Eq. 6-7, per frame."""
    B, _, H, W = pred.shape
    out = torch.empty(B, dtype=pred.dtype)
    for b in range(B):
        errs = [float(torch.linalg.vector_norm(pred[b, :, i, j] - target[b, :, i, j])) for i in range(H) for j in range(W)]
        den = sum(1 - math.exp(-e) for e in errs)
        out[b] = 0.0 if den == 0 else sum((1 - math.exp(-e)) / den * e for e in errs)
    return out


def _ref_dist(q, items, b, k, m):
    return torch.linalg.vector_norm(q[b, k] - items[m])


def _ref_pn(q, items):
    s = ref_logits(q.detach(), items.detach())
    B, K, _ = q.shape
    ps = [[0] * K for _ in range(B)]
    ns = [[None] * K for _ in range(B)]
    for b in range(B):
        for k in range(K):
            ps[b][k], ns[b][k] = _ref_nearest_one([float(x) for x in s[b, k]])
    return ps, ns


def ref_compactness(q, items):
    """Eq. 10-11, mean over queries instead of sum."""
    B, K, _ = q.shape
    p_idx, _ = _ref_pn(q, items)
    total = 0.0
    for b in range(B):
        for k in range(K):
            total = total + _ref_dist(q, items, b, k, int(p_idx[b][k]))
    return total / (B * K)


def ref_separateness(q, items, margin):
    """Eq. 12-13, mean over queries instead of sum."""
    B, K, _ = q.shape
    if items.shape[0] < 2:
        raise ValueError("M=1: no second nearest item")
    ps, ns = _ref_pn(q, items)
    total = 0.0
    for b in range(B):
        for k in range(K):
            t = _ref_dist(q, items, b, k, ps[b][k]) - _ref_dist(q, items, b, k, ns[b][k]) + margin
            total = total + torch.clamp(t, min=0)
    return total / (B * K)


def ref_feature_distance(q, items):
    """Eq. 14."""
    B, K, _ = q.shape
    ps, _ = _ref_pn(q, items)
    out = []
    for b in range(B):
        out.append(sum(_ref_dist(q, items, b, k, ps[b][k]) for k in range(K)) / K)
    return torch.stack([torch.as_tensor(x, dtype=q.dtype) for x in out])


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


def unit(x):
    return torch.nn.functional.normalize(x, dim=-1)


def make(B, K, M, C, dtype=torch.float64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    q = unit(torch.randn(B, K, C, generator=g, dtype=torch.float64)).to(dtype=dtype, device=device)
    items = unit(torch.randn(M, C, generator=g, dtype=torch.float64)).to(dtype=dtype, device=device)
    return q, items


TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}
DTYPES = [torch.float32, torch.float64]
# Each value of B in {1,3}, K in {1,7,16}, M in {1,2,10}, C in {4,32} appears; not the full product (runtime).
SHAPES = [
    (1, 1, 1, 4),
    (1, 7, 2, 32),
    (3, 16, 10, 4),
    (3, 1, 10, 32),
    (1, 16, 2, 4),
    (3, 7, 1, 32),
    (3, 16, 10, 32),
    (1, 7, 10, 4),
    (3, 7, 2, 4),
]
SHAPES_M2 = [s for s in SHAPES if s[2] >= 2]
case = pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
shape = pytest.mark.parametrize("B,K,M,C", SHAPES)
shape_m2 = pytest.mark.parametrize("B,K,M,C", SHAPES_M2)


# ---------------------------------------------------------------------------------------------------------------
# Vectorised vs loop reference
# ---------------------------------------------------------------------------------------------------------------


@case
@shape
def test_read_matches_reference(B, K, M, C, dtype):
    q, items = make(B, K, M, C, dtype)
    logits = mem.matching_logits(q, items)
    torch.testing.assert_close(logits, ref_logits(q, items), **TOL[dtype])
    w = mem.read_weights(q, items)
    torch.testing.assert_close(w, ref_read_weights(q, items), **TOL[dtype])
    torch.testing.assert_close(w.sum(-1), torch.ones(B, K, dtype=dtype), **TOL[dtype])
    p_hat, w2 = mem.read(q, items)
    rp, rw = ref_read(q, items)
    assert p_hat.shape == (B, K, C) and p_hat.dtype == dtype and w2.shape == (B, K, M)
    torch.testing.assert_close(p_hat, rp, **TOL[dtype])
    torch.testing.assert_close(w2, rw, **TOL[dtype])
    cat, w3 = mem.read_and_concat(q, items)
    assert cat.shape == (B, K, 2 * C)
    torch.testing.assert_close(cat[..., :C], q, rtol=0, atol=0)
    torch.testing.assert_close(cat[..., C:], rp, **TOL[dtype])
    torch.testing.assert_close(w3, rw, **TOL[dtype])


@case
@shape_m2
def test_nearest_items_matches_reference(B, K, M, C, dtype):
    q, items = make(B, K, M, C, dtype, seed=1)
    p, n = mem.nearest_items(q, items)
    rp, rn = ref_nearest(q, items)
    assert p.dtype == torch.long and p.shape == (B, K)
    assert torch.equal(p, rp) and torch.equal(n, rn)
    assert not torch.any(p == n)
    # choice 4: argmax of w (Eq. 11) == argmax of the logits
    assert torch.equal(p, mem.read_weights(q, items).argmax(-1))


@case
@shape
def test_update_matches_reference(B, K, M, C, dtype):
    q, items = make(B, K, M, C, dtype, seed=2)
    before = items.clone()
    new = mem.update(q, items)
    assert torch.equal(items, before), "update must not modify its input"
    assert new.shape == (M, C) and new.dtype == dtype
    torch.testing.assert_close(new, ref_update(q, items), **TOL[dtype])


@case
@pytest.mark.parametrize("mask", [[True, False, True], [False, True, False], [False, False, False], [True] * 3])
def test_update_frame_mask_matches_reference(mask, dtype):
    q, items = make(3, 16, 10, 8, dtype, seed=3)
    fm = torch.tensor(mask)
    new = mem.update(q, items, frame_mask=fm)
    torch.testing.assert_close(new, ref_update(q, items, fm), **TOL[dtype])
    if any(mask):  # same as updating with the allowed frames only
        torch.testing.assert_close(new, mem.update(q[fm], items), **TOL[dtype])
    else:
        assert torch.equal(new, items), "no frame allowed: items must be returned unchanged"


@case
@pytest.mark.parametrize("B,C,H,W", [(1, 1, 1, 1), (3, 1, 5, 4), (2, 3, 6, 7)])
def test_weighted_regular_score_matches_reference(B, C, H, W, dtype):
    g = torch.Generator().manual_seed(4)
    pred = torch.rand(B, C, H, W, generator=g, dtype=torch.float64).to(dtype)
    target = torch.rand(B, C, H, W, generator=g, dtype=torch.float64).to(dtype)
    e = mem.weighted_regular_score(pred, target)
    assert e.shape == (B,) and e.dtype == dtype
    torch.testing.assert_close(e, ref_weighted_regular_score(pred, target), **TOL[dtype])


@case
@shape_m2
def test_losses_match_reference(B, K, M, C, dtype):
    q, items = make(B, K, M, C, dtype, seed=5)
    torch.testing.assert_close(mem.compactness_loss(q, items), ref_compactness(q, items).to(dtype), **TOL[dtype])
    for margin in (0.1, 1.0):
        torch.testing.assert_close(
            mem.separateness_loss(q, items, margin), ref_separateness(q, items, margin).to(dtype), **TOL[dtype]
        )
    d = mem.feature_distance(q, items)
    assert d.shape == (B,)
    torch.testing.assert_close(d, ref_feature_distance(q, items), **TOL[dtype])


@case
def test_losses_with_single_item(dtype):
    q, items = make(3, 7, 1, 32, dtype, seed=6)
    torch.testing.assert_close(mem.compactness_loss(q, items), ref_compactness(q, items).to(dtype), **TOL[dtype])
    torch.testing.assert_close(mem.feature_distance(q, items), ref_feature_distance(q, items), **TOL[dtype])


# ---------------------------------------------------------------------------------------------------------------
# Properties and choices
# ---------------------------------------------------------------------------------------------------------------


def _public_code_variant(q, items):
    """Eq. 3-5 with Eq. 5's max taken over ALL queries (the public MNAD code). Only used to show the difference."""
    N = q.shape[0] * q.shape[1]
    qq = q.reshape(N, -1)
    s = qq @ items.T  # (N, M)
    v = torch.softmax(s, dim=0)  # (N, M), Eq. 4
    nearest = s.argmax(1)
    new = items.clone()
    for m in range(items.shape[0]):
        sel = nearest == m
        if sel.any():
            upd = (v[sel, m] / v[:, m].max()).unsqueeze(1) * qq[sel]
            new[m] = unit(items[m] + upd.sum(0))
    return new


def test_eq5_max_is_over_assigned_queries_only():
    """Item 1's only assigned query is not the query that matches item 1 best (that one is assigned to item 0).

    Eq. 5 (max over U^1) gives that query weight 1: p_1 <- f(p_1 + q_b). Dividing by the max over all queries
    (the public code) gives it weight exp(s_b1 - s_a1) < 1.
    """
    e1, e2 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    items = torch.stack([e1, unit(e1 + e2)])  # (2, 3)
    qa = e1  # nearest item 0 (cos 1 vs 0.707); best match of item 1 over all queries
    qb = unit(-0.2 * e1 + e2)  # nearest item 1 (cos 0.555 vs -0.196)
    q = torch.stack([qa, qb]).unsqueeze(0)  # (1, 2, 3)
    assert mem.nearest_items(q, items)[0].tolist() == [[0, 1]]

    new = mem.update(q, items)
    expected_1 = unit(items[1] + qb)  # weight exactly 1
    torch.testing.assert_close(new[1], expected_1, rtol=0, atol=1e-12)
    torch.testing.assert_close(new[0], unit(items[0] + qa), rtol=0, atol=1e-12)
    public = _public_code_variant(q, items)
    assert not torch.allclose(public[1], new[1], atol=1e-4), "Eq. 5 must not divide by the max over all queries"
    torch.testing.assert_close(new, ref_update(q, items), rtol=0, atol=1e-12)


def test_update_batch_is_one_query_set():
    """Choice 1: B frames are pooled, so the update equals the update of one frame holding all B*K queries."""
    q, items = make(3, 16, 10, 8, seed=7)
    torch.testing.assert_close(mem.update(q, items), mem.update(q.reshape(1, 48, 8), items), rtol=0, atol=1e-12)


def test_update_unassigned_items_unchanged_unit_norm_no_grad():
    q, items = make(1, 3, 10, 16, seed=8)
    q.requires_grad_(True)
    items.requires_grad_(True)
    new = mem.update(q, items)
    assert not new.requires_grad and new.grad_fn is None
    assigned = torch.zeros(10, dtype=torch.bool)
    assigned[mem.nearest_items(q.detach(), items.detach())[0].flatten()] = True
    assert 1 <= int(assigned.sum()) <= 3
    assert torch.equal(new[~assigned], items.detach()[~assigned]), "unassigned items must stay bit-identical"
    assert not torch.allclose(new[assigned], items.detach()[assigned])
    torch.testing.assert_close(torch.linalg.vector_norm(new, dim=-1), torch.ones(10, dtype=torch.float64))


def test_update_frame_mask_validation():
    q, items = make(2, 4, 3, 8)
    with pytest.raises(ValueError, match="frame_mask"):
        mem.update(q, items, frame_mask=torch.ones(3, dtype=torch.bool))


def test_weighted_regular_score_properties():
    target = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(mem.weighted_regular_score(target, target), torch.zeros(2, dtype=torch.float64))
    # uniform per-pixel error e: the weights are uniform and sum to 1, so E = e
    pred = target.clone()
    pred[:, 0] += 0.3
    torch.testing.assert_close(mem.weighted_regular_score(pred, target), torch.full((2,), 0.3, dtype=torch.float64))
    # Eq. 7's denominator is per frame: one frame's score does not depend on the other frame
    other = target.clone()
    other[1] += torch.rand(3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(mem.weighted_regular_score(pred, target)[0], mem.weighted_regular_score(
        torch.stack([pred[0], other[1]]), target)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="same shape"):
        mem.weighted_regular_score(pred, target[:, :2])


def test_gradients_flow_into_queries_only():
    q, items = make(2, 7, 5, 8, seed=9)
    q.requires_grad_(True)
    items.requires_grad_(True)
    loss = mem.compactness_loss(q, items) + mem.separateness_loss(q, items, margin=1.0)
    loss.backward()
    assert q.grad is not None and torch.count_nonzero(q.grad) > 0
    assert items.grad is None


def test_separateness_single_item_raises():
    q, items = make(2, 4, 1, 8)
    with pytest.raises(ValueError, match="at least 2 memory items"):
        mem.separateness_loss(q, items, margin=1.0)
    with pytest.raises(ValueError, match="at least 2 memory items"):
        mem.nearest_items(q, items)


def test_shape_validation():
    q, items = make(2, 4, 3, 8)
    with pytest.raises(ValueError, match="channel mismatch"):
        mem.read(q, items[:, :4])
    with pytest.raises(ValueError, match=r"\(B, K, C\)"):
        mem.read(q[0], items)


@pytest.mark.parametrize("name", ["read", "compactness", "separateness", "feature_distance"])
def test_gradcheck(name):
    q, items = make(2, 5, 4, 6, seed=10)
    q.requires_grad_(True)
    if name == "read":
        items.requires_grad_(True)
        fn, inputs = (lambda a, b: mem.read(a, b)[0]), (q, items)
    elif name == "compactness":
        fn, inputs = (lambda a: mem.compactness_loss(a, items)), (q,)
    elif name == "separateness":
        fn, inputs = (lambda a: mem.separateness_loss(a, items, margin=0.5)), (q,)
    else:
        fn, inputs = (lambda a: mem.feature_distance(a, items)), (q,)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@case
def test_cuda_matches_cpu(dtype):
    q, items = make(3, 64, 10, 32, dtype, seed=11)
    qc, ic = q.cuda(), items.cuda()
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else TOL[dtype]
    cpu = lambda t: t.detach().cpu()  # noqa: E731
    torch.testing.assert_close(cpu(mem.read(qc, ic)[0]), mem.read(q, items)[0], **tol)
    torch.testing.assert_close(cpu(mem.read_and_concat(qc, ic)[0]), mem.read_and_concat(q, items)[0], **tol)
    for a, b in zip(mem.nearest_items(qc, ic), mem.nearest_items(q, items)):
        assert torch.equal(cpu(a), b)
    fm = torch.tensor([True, False, True])
    torch.testing.assert_close(cpu(mem.update(qc, ic, fm.cuda())), mem.update(q, items, fm), **tol)
    torch.testing.assert_close(cpu(mem.update(qc, ic, fm)), mem.update(q, items, fm), **tol)  # CPU mask works too
    assert torch.equal(cpu(mem.update(qc, ic, torch.zeros(3, dtype=torch.bool, device="cuda"))), items)
    torch.testing.assert_close(cpu(mem.compactness_loss(qc, ic)), mem.compactness_loss(q, items), **tol)
    torch.testing.assert_close(cpu(mem.separateness_loss(qc, ic, 1.0)), mem.separateness_loss(q, items, 1.0), **tol)
    torch.testing.assert_close(cpu(mem.feature_distance(qc, ic)), mem.feature_distance(q, items), **tol)
    pred, target = torch.rand(2, 3, 16, 16, dtype=dtype), torch.rand(2, 3, 16, 16, dtype=dtype)
    torch.testing.assert_close(
        cpu(mem.weighted_regular_score(pred.cuda(), target.cuda())), mem.weighted_regular_score(pred, target), **tol
    )
    qg = qc.clone().requires_grad_(True)
    mem.separateness_loss(qg, ic, 1.0).backward()
    assert qg.grad is not None and torch.isfinite(qg.grad).all()
