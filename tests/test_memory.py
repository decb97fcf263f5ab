"""Tests for vadlab.memory against the plain loop references of vadlab.memory.reference (written straight from the
equations of MNAD, DREAM, MAAM-Net and STD), plus the papers' worked numbers and the documented choices.

The loop references are deliberately unvectorised and are also what benchmarks/bench_memory.py times the
vectorised ops against.
"""

from __future__ import annotations

import math

import pytest
import torch

from vadlab import memory as mem
from vadlab.memory.reference import (
    make,
    ref_cluster_distance,
    ref_cluster_loss,
    ref_compactness,
    ref_cosine_similarity,
    ref_entropy,
    ref_feature_distance,
    ref_hard_shrinkage,
    ref_latent_margin,
    ref_logits,
    ref_nearest,
    ref_read,
    ref_read_weights,
    ref_separateness,
    ref_shrinkage_read,
    ref_soft_assignment,
    ref_triplet,
    ref_update,
    ref_weighted_regular_score,
    unit,
)

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


def test_read_temperature_sharpens_towards_the_nearest_item():
    """vadlab's read temperature: 1 is Eq. 1 exactly; below 1 the nearest item takes more of the weight, the argmax
    is kept, and a tensor temperature (a learned scalar) gets a gradient."""
    q, items = make(2, 7, 10, 16, torch.float64)
    w1 = mem.read_weights(q, items)
    torch.testing.assert_close(mem.read_weights(q, items, 1.0), w1, rtol=0, atol=0)
    torch.testing.assert_close(mem.read_weights(q, items, torch.tensor(1.0, dtype=torch.float64)), w1)
    # at temperature 1 the cosines of unit vectors cap the top weight at e / (e + (M - 1) / e)
    assert float(w1.max()) <= torch.e / (torch.e + 9 / torch.e) + 1e-12
    sharp = mem.read_weights(q, items, 0.05)
    assert torch.equal(sharp.argmax(-1), w1.argmax(-1))
    assert (sharp.max(-1).values > w1.max(-1).values).all()
    torch.testing.assert_close(sharp, torch.softmax(mem.matching_logits(q, items) / 0.05, -1))
    t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    read, _ = mem.read(q, items, t)
    read.sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad)


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


# ===============================================================================================================
# The memory package: DREAM, MAAM-Net and STD ops, and the MNAD update behind the new switch
# ===============================================================================================================


@torch.no_grad()
def _update_before_package(queries, items, frame_mask=None):
    """FROZEN verbatim copy of ``vadlab/memory.py::update`` as of commit 701a755 (before the package split).

    Kept only to pin ``update(..., max_renorm=True)`` bit for bit to the pre-package MNAD rule. Do not edit.
    """
    B, K, C = queries.shape
    M = items.shape[0]
    q = queries.reshape(B * K, C).to(items.dtype)
    logits = torch.matmul(q, items.transpose(0, 1))
    nearest = logits.argmax(dim=-1)
    if frame_mask is None:
        allowed = torch.ones(B * K, dtype=torch.bool, device=q.device)
    else:
        allowed = frame_mask.to(device=q.device, dtype=torch.bool).repeat_interleave(K)
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
    logits = torch.where(allowed.unsqueeze(-1), logits, neg_inf)
    log_v = logits - torch.logsumexp(logits, dim=0, keepdim=True)
    log_v_own = log_v.gather(1, nearest.unsqueeze(1)).squeeze(1)
    log_v_own = torch.where(allowed, log_v_own, neg_inf)
    seg_max = torch.full((M,), float("-inf"), dtype=q.dtype, device=q.device)
    seg_max = seg_max.scatter_reduce(0, nearest, log_v_own, reduce="amax", include_self=True)
    weight = torch.exp(log_v_own - seg_max[nearest])
    weight = torch.where(allowed, weight, torch.zeros_like(weight))
    delta = torch.zeros_like(items).index_add_(0, nearest, weight.unsqueeze(-1) * q)
    count = torch.zeros(M, dtype=q.dtype, device=q.device).index_add_(0, nearest, allowed.to(q.dtype))
    new_items = torch.nn.functional.normalize(items + delta, p=2.0, dim=-1)
    return torch.where((count > 0).unsqueeze(-1), new_items, items)


MASKS = [None, [True, False, True], [False, True, False], [False, False, False]]
# Small shapes for the MAAM references (autograd through scalar loops is slow).
MAAM_SHAPES = [(1, 1, 1, 4), (2, 5, 8, 6), (1, 7, 3, 16), (3, 4, 12, 5)]
maam_shape = pytest.mark.parametrize("B,K,M,C", MAAM_SHAPES)


def _mask(mask, B):
    return None if mask is None else torch.tensor(mask[:B] + [False] * (B - len(mask)))


def _raw(B, K, M, C, dtype=torch.float64, seed=0):
    """Un-normalised queries (B, K, C) and items (M, C) with varied norms (MAAM's inputs)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, K, C, generator=g, dtype=torch.float64) * (0.1 + 3 * torch.rand(B, K, 1, generator=g,
                                                                                         dtype=torch.float64))
    items = torch.randn(M, C, generator=g, dtype=torch.float64) * (0.1 + 3 * torch.rand(M, 1, generator=g,
                                                                                        dtype=torch.float64))
    return q.to(dtype), items.to(dtype)


E1, E2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)


def _at(deg):
    """The unit vector of the plane at ``deg`` degrees from e1."""
    return torch.tensor([math.cos(math.radians(deg)), math.sin(math.radians(deg))], dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------------
# Update: MNAD (max_renorm=True, unchanged) and DREAM (max_renorm=False)
# ---------------------------------------------------------------------------------------------------------------


@case
@shape
@pytest.mark.parametrize("mask", MASKS, ids=["none", "101", "010", "000"])
def test_update_max_renorm_is_the_pre_package_update_bit_for_bit(B, K, M, C, dtype, mask):
    q, items = make(B, K, M, C, dtype, seed=12)
    fm = _mask(mask, B)
    before = _update_before_package(q, items, fm)
    assert torch.equal(mem.update(q, items, fm), before)
    assert torch.equal(mem.update(q, items, fm, max_renorm=True), before)
    assert torch.equal(mem.update(q, items, frame_mask=fm, max_renorm=True), before)


@case
@shape
@pytest.mark.parametrize("mask", MASKS, ids=["none", "101", "010", "000"])
def test_update_dream_matches_reference(B, K, M, C, dtype, mask):
    q, items = make(B, K, M, C, dtype, seed=13)
    fm = _mask(mask, B)
    before = items.clone()
    new = mem.update(q, items, fm, max_renorm=False)
    assert torch.equal(items, before), "update must not modify its input"
    assert new.shape == (M, C) and new.dtype == dtype
    torch.testing.assert_close(new, ref_update(q, items, fm, max_renorm=False), **TOL[dtype])
    if fm is not None and not bool(fm.any()):
        assert torch.equal(new, items), "no frame allowed: items must be returned unchanged"


def test_update_dream_example_3():
    """dream.md example 3: items e1, e2; normal queries e1 and (0.5, 0.8660).

    DREAM Eq. 3: v = 0.7039 for item 2, p1 = e1, p2 = (0.2136, 0.9769); MNAD's Eq. 5 rule gives (0.2588, 0.9659).
    """
    items = torch.stack([E1, E2])  # (2, 2)
    q2 = _at(60.0)  # (0.5, 0.8660)
    q = torch.stack([E1, q2]).unsqueeze(0)  # (1, 2, 2)
    assert mem.nearest_items(q, items)[0].tolist() == [[0, 1]]
    v = torch.softmax(torch.tensor([0.0, float(q2[1])], dtype=torch.float64), dim=0)[1]  # item 2: q.p2 = 0, 0.866
    assert abs(float(v) - 0.7039) < 1e-4
    dream = mem.update(q, items, max_renorm=False)
    torch.testing.assert_close(dream[0], E1, rtol=0, atol=1e-12)
    torch.testing.assert_close(dream[1], torch.tensor([0.2136, 0.9769], dtype=torch.float64), rtol=0, atol=1e-4)
    torch.testing.assert_close(dream[1], unit(E2 + v * q2), rtol=0, atol=1e-12)
    mnad = mem.update(q, items)
    torch.testing.assert_close(mnad[1], torch.tensor([0.2588, 0.9659], dtype=torch.float64), rtol=0, atol=1e-4)
    for rule in (True, False):
        torch.testing.assert_close(mem.update(q, items, max_renorm=rule), ref_update(q, items, max_renorm=rule),
                                   rtol=0, atol=1e-12)


def test_update_dream_unassigned_unchanged_unit_norm_no_grad():
    q, items = make(1, 3, 10, 16, seed=8)
    q.requires_grad_(True)
    items.requires_grad_(True)
    new = mem.update(q, items, max_renorm=False)
    assert not new.requires_grad and new.grad_fn is None
    assigned = torch.zeros(10, dtype=torch.bool)
    assigned[mem.nearest_items(q.detach(), items.detach())[0].flatten()] = True
    assert torch.equal(new[~assigned], items.detach()[~assigned])
    torch.testing.assert_close(torch.linalg.vector_norm(new, dim=-1), torch.ones(10, dtype=torch.float64))
    # DREAM's v <= MNAD's v / max: without Eq. 5 every assigned item moves less (or equally) towards its queries
    mnad = mem.update(q, items)
    old = items.detach()
    assert torch.all((new * old).sum(-1) >= (mnad * old).sum(-1) - 1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Losses: squared (DREAM) and query_mask
# ---------------------------------------------------------------------------------------------------------------


@case
@shape_m2
def test_squared_losses_match_reference(B, K, M, C, dtype):
    q, items = make(B, K, M, C, dtype, seed=14)
    got = mem.compactness_loss(q, items, squared=True)
    torch.testing.assert_close(got, ref_compactness(q, items, squared=True).to(dtype), **TOL[dtype])
    for margin in (0.1, 1.0):
        torch.testing.assert_close(mem.separateness_loss(q, items, margin, squared=True),
                                   ref_separateness(q, items, margin, squared=True).to(dtype), **TOL[dtype])
    d = mem.feature_distance(q, items, squared=True)
    assert d.shape == (B,) and d.dtype == dtype
    torch.testing.assert_close(d, ref_feature_distance(q, items, squared=True), **TOL[dtype])


@case
@pytest.mark.parametrize("squared", [False, True], ids=["mnad", "dream"])
@pytest.mark.parametrize("mask", MASKS[1:] + [[True, True, True]], ids=["101", "010", "000", "111"])
def test_query_mask_matches_reference(mask, squared, dtype):
    q, items = make(3, 7, 5, 8, dtype, seed=15)
    qm = torch.tensor(mask)
    for margin in (0.1, 1.0):
        torch.testing.assert_close(mem.separateness_loss(q, items, margin, squared=squared, query_mask=qm),
                                   ref_separateness(q, items, margin, squared, qm).to(dtype), **TOL[dtype])
    got = mem.compactness_loss(q, items, squared=squared, query_mask=qm)
    torch.testing.assert_close(got, ref_compactness(q, items, squared, qm).to(dtype), **TOL[dtype])
    if any(mask):  # the mean over the selected samples' queries = the loss on those samples alone
        torch.testing.assert_close(got, mem.compactness_loss(q[qm], items, squared=squared), **TOL[dtype])
    if all(mask):
        torch.testing.assert_close(got, mem.compactness_loss(q, items, squared=squared), **TOL[dtype])


def test_query_mask_none_selected_is_zero_with_graph():
    q, items = make(2, 4, 3, 8, seed=16)
    q.requires_grad_(True)
    none = torch.zeros(2, dtype=torch.bool)
    for squared in (False, True):
        losses = [mem.compactness_loss(q, items, squared=squared, query_mask=none),
                  mem.separateness_loss(q, items, 1.0, squared=squared, query_mask=none)]
        for loss in losses:
            assert loss.shape == () and float(loss.detach()) == 0.0 and loss.requires_grad
            (g,) = torch.autograd.grad(loss, q)
            assert torch.equal(g, torch.zeros_like(q))


def test_query_mask_gradient_only_into_selected_samples():
    q, items = make(3, 4, 5, 8, seed=17)
    q.requires_grad_(True)
    qm = torch.tensor([False, True, False])
    (mem.compactness_loss(q, items, squared=True, query_mask=qm)
     + mem.separateness_loss(q, items, 1.0, squared=True, query_mask=qm)).backward()
    assert torch.count_nonzero(q.grad[1]) > 0
    assert torch.equal(q.grad[0], torch.zeros_like(q.grad[0])) and torch.equal(q.grad[2], torch.zeros_like(q.grad[2]))


def test_query_mask_validation():
    q, items = make(2, 4, 3, 8)
    with pytest.raises(ValueError, match="query_mask"):
        mem.compactness_loss(q, items, query_mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="query_mask"):
        mem.separateness_loss(q, items, 1.0, query_mask=torch.ones(2, 4, dtype=torch.bool))


def test_dream_example_5_memory_losses():
    """dream.md example 5 (Eq. 7-8): q = e1, nearest item at 30 deg, second at 60 deg, alpha = 1.

    Squared: L_com = L_sep = 2 - 2 cos 30 = 0.2679; unsquared (MNAD Eq. 10, 12): 0.5176.
    """
    q = E1.reshape(1, 1, 2)
    items = torch.stack([_at(60.0), _at(-150.0), _at(30.0)])  # nearest index 2, second index 0
    assert mem.nearest_items(q, items)[0].item() == 2 and mem.nearest_items(q, items)[1].item() == 0
    for fn in (lambda sq: mem.compactness_loss(q, items, squared=sq),
               lambda sq: mem.separateness_loss(q, items, 1.0, squared=sq),
               lambda sq: mem.feature_distance(q, items, squared=sq)[0]):
        assert abs(float(fn(True)) - 0.2679) < 1e-4
        assert abs(float(fn(False)) - 0.5176) < 1e-4
        assert abs(float(fn(True)) - (2 - math.sqrt(3))) < 1e-12
    assert float(mem.compactness_loss(q, items)) == float(mem.compactness_loss(q, items, squared=False))


def test_dream_eq11_example_6():
    """dream.md example 6 (Eq. 11, squared): q = e1 with its nearest item at 60 deg gives D = 1.0."""
    q = E1.reshape(1, 1, 2)
    items = torch.stack([_at(60.0), _at(150.0)])
    torch.testing.assert_close(mem.feature_distance(q, items, squared=True), torch.ones(1, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------------------
# DREAM Eq. 5: triplet loss
# ---------------------------------------------------------------------------------------------------------------


@case
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("B,D", [(1, 1), (4, 3), (6, 16)])
def test_triplet_matches_reference(B, D, squared, dtype):
    g = torch.Generator().manual_seed(18)
    a, p, n = (torch.randn(B, D, generator=g, dtype=torch.float64).to(dtype) for _ in range(3))
    for margin in (0.5, 1.0, 4.0):
        torch.testing.assert_close(mem.triplet_loss(a, p, n, margin, squared=squared),
                                   ref_triplet(a, p, n, margin, squared).to(dtype), **TOL[dtype])


def test_triplet_dream_example_5():
    """f_a = 0, f_p = (1, 0), f_n = (0, 1.5), beta = 1: Eq. 5 (squared) gives 0; nn.TripletMarginLoss gives 0.5."""
    a = torch.zeros(1, 2, dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    n = torch.tensor([[0.0, 1.5]], dtype=torch.float64)
    assert float(mem.triplet_loss(a, p, n, 1.0)) == 0.0
    assert abs(float(mem.triplet_loss(a, p, n, 1.0, squared=False)) - 0.5) < 1e-12
    torch_loss = torch.nn.TripletMarginLoss(margin=1.0)(a, p, n)
    assert abs(float(torch_loss) - 0.5) < 1e-5
    with pytest.raises(ValueError, match="same shape"):
        mem.triplet_loss(a, p, n[:, :1], 1.0)


# ---------------------------------------------------------------------------------------------------------------
# MAAM Eq. 1-4: cosine similarity, hard shrinkage, shrinkage read
# ---------------------------------------------------------------------------------------------------------------


@case
@shape
def test_cosine_similarity_matches_reference(B, K, M, C, dtype):
    q, items = _raw(B, K, M, C, dtype, seed=19)
    s = mem.cosine_similarity(q, items)
    assert s.shape == (B, K, M) and s.dtype == dtype
    torch.testing.assert_close(s, ref_cosine_similarity(q, items), **TOL[dtype])
    assert torch.all(s.abs() <= 1 + 1e-6)
    # for unit inputs it is MNAD's p_m^T q_k
    qu, iu = make(B, K, M, C, dtype, seed=19)
    torch.testing.assert_close(mem.cosine_similarity(qu, iu), mem.matching_logits(qu, iu), **TOL[dtype])


def test_cosine_similarity_zero_vector_is_zero():
    q, items = _raw(1, 2, 3, 4)
    q[0, 1] = 0.0
    s = mem.cosine_similarity(q, items)
    assert torch.isfinite(s).all() and torch.equal(s[0, 1], torch.zeros(3, dtype=torch.float64))


@case
@pytest.mark.parametrize("N", [1, 2, 5, 40])
def test_hard_shrinkage_matches_reference(N, dtype):
    g = torch.Generator().manual_seed(20)
    w = torch.softmax(3 * torch.randn(3, 4, N, generator=g, dtype=torch.float64), dim=-1).to(dtype)
    for lam in (1.0 / N, 2.0 / N, 0.5 / N):
        got = mem.hard_shrinkage(w, lam)
        assert got.shape == w.shape and got.dtype == dtype
        torch.testing.assert_close(got, ref_hard_shrinkage(w, lam), **TOL[dtype])


def test_hard_shrinkage_properties():
    """Entries with softmax weight <= lambda are exactly 0; the rest sum to 1; kept entries keep their order."""
    g = torch.Generator().manual_seed(21)
    N = 50
    s_tilde = torch.softmax(torch.randn(4, 9, N, generator=g, dtype=torch.float64), dim=-1)  # (B, K, N)
    for lam in (1.0 / N, 3.0 / N):
        w = mem.hard_shrinkage(s_tilde, lam)
        dropped = s_tilde <= lam
        assert dropped.any() and (~dropped).any()
        assert torch.all(w[dropped] == 0.0), "weights <= lambda must be exactly zero"
        assert torch.all(w[~dropped] > 0.0)
        any_kept = (~dropped).any(-1)  # (B, K); at lambda = 3/N some queries keep nothing: all-zero weights
        assert any_kept.any()
        if lam == 1.0 / N:  # a non-uniform softmax always has an entry above its mean 1/N
            assert any_kept.all()
        torch.testing.assert_close(w.sum(-1), any_kept.to(torch.float64), rtol=0, atol=1e-12)
        # away from the threshold Eq. 3 is s~ itself, so w is s~ renormalised over the kept items
        kept = torch.where(dropped, torch.zeros_like(s_tilde), s_tilde)
        expected = kept / kept.sum(-1, keepdim=True).clamp_min(1e-300)
        torch.testing.assert_close(w, expected, rtol=1e-6, atol=1e-9)
    # exactly uniform weights with lambda = 1/N: nothing exceeds lambda, the clamped sum gives all zeros, no NaN
    uniform = torch.full((2, N), 1.0 / N, dtype=torch.float64)
    assert torch.equal(mem.hard_shrinkage(uniform, 1.0 / N), torch.zeros_like(uniform))


@case
@maam_shape
def test_shrinkage_read_matches_reference(B, K, M, C, dtype):
    q, items = _raw(B, K, M, C, dtype, seed=22)
    lam = 1.0 / M if M > 1 else 0.5
    z_hat, w = mem.shrinkage_read(q, items, lam)
    rz, rw = ref_shrinkage_read(q, items, lam)
    assert z_hat.shape == (B, K, C) and w.shape == (B, K, M) and z_hat.dtype == dtype
    torch.testing.assert_close(w, rw, **TOL[dtype])
    torch.testing.assert_close(z_hat, rz, **TOL[dtype])


@maam_shape
def test_shrinkage_read_gradients_match_reference(B, K, M, C):
    """Items are learned by gradient in MAAM: d/d(queries, items) equal the loop reference's autograd."""
    q, items = _raw(B, K, M, C, seed=23)
    lam = 1.0 / M if M > 1 else 0.5
    g = torch.Generator().manual_seed(24)
    proj = torch.randn(B, K, C, generator=g, dtype=torch.float64)
    grads = []
    for fn in (mem.shrinkage_read, ref_shrinkage_read):
        qq, ii = q.clone().requires_grad_(True), items.clone().requires_grad_(True)
        z_hat, w = fn(qq, ii, lam)
        ((z_hat * proj).sum() + (w * w).sum()).backward()
        grads.append((qq.grad, ii.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-9, atol=1e-12)
    assert torch.count_nonzero(grads[0][1]) > 0, "the items must receive a gradient (no detach)"


def test_shrinkage_read_scale_invariance():
    """Eq. 1 is a cosine: scaling queries or items by a positive constant leaves w unchanged (the public code's
    similarity fails this); the read scales with the items (Eq. 4 reads the raw items)."""
    q, items = _raw(2, 6, 20, 8, seed=25)
    z_hat, w = mem.shrinkage_read(q, items, 1.0 / 20)
    z2, w2 = mem.shrinkage_read(7.0 * q, 0.25 * items, 1.0 / 20)
    torch.testing.assert_close(w2, w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(z2, 0.25 * z_hat, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mem.cosine_similarity(3.0 * q, 0.5 * items), mem.cosine_similarity(q, items),
                               rtol=1e-12, atol=1e-12)
    # the read with the paper's pieces spelled out: softmax of the cosine, shrinkage, w^T M
    w_manual = mem.hard_shrinkage(torch.softmax(mem.cosine_similarity(q, items), -1), 1.0 / 20)
    torch.testing.assert_close(w, w_manual, rtol=0, atol=0)
    torch.testing.assert_close(z_hat, w_manual @ items, rtol=0, atol=0)


def test_shrinkage_read_keeps_about_half_of_a_random_memory():
    """maam.md: with a true cosine and lambda = 1/N, a random memory keeps roughly N/2 items per query."""
    N = 500
    q, items = _raw(2, 20, N, 64, seed=26)
    _, w = mem.shrinkage_read(q, items, 1.0 / N)
    kept = (w > 0).sum(-1).to(torch.float64)  # (B, K), items per query
    assert 0.35 * N < float(kept.mean()) < 0.55 * N


# ---------------------------------------------------------------------------------------------------------------
# MAAM Eq. 8-9: entropy (sparsity) and latent margin losses
# ---------------------------------------------------------------------------------------------------------------


@case
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_entropy_loss_matches_reference(reduction, dtype):
    q, items = _raw(2, 5, 12, 6, dtype, seed=27)
    _, w = mem.shrinkage_read(q, items, 1.0 / 12)  # (B, K, N) with exact zeros
    assert (w == 0).any()
    got = mem.entropy_loss(w, item_reduction=reduction)
    assert got.shape == ()
    torch.testing.assert_close(got, ref_entropy(w, item_reduction=reduction).to(dtype), **TOL[dtype])


def test_entropy_loss_values_and_finite_gradient():
    N = 8
    one_hot = torch.zeros(3, N, dtype=torch.float64)
    one_hot[:, 2] = 1.0
    assert abs(float(mem.entropy_loss(one_hot))) < 1e-10
    uniform = torch.full((4, 5, N), 1.0 / N, dtype=torch.float64)
    torch.testing.assert_close(mem.entropy_loss(uniform), torch.tensor(math.log(N), dtype=torch.float64))
    torch.testing.assert_close(mem.entropy_loss(uniform, item_reduction="mean"),
                               torch.tensor(math.log(N) / N, dtype=torch.float64))
    w = one_hot.clone().requires_grad_(True)
    mem.entropy_loss(w).backward()
    assert torch.isfinite(w.grad).all(), "zero weights must not give NaN/inf gradients"
    with pytest.raises(ValueError, match="item_reduction"):
        mem.entropy_loss(uniform, item_reduction="max")


@case
@pytest.mark.parametrize("zeta", [0.0, 0.1, 0.5])
def test_latent_margin_matches_reference(zeta, dtype):
    z, _ = _raw(2, 6, 1, 8, dtype, seed=28)
    z_hat, _ = _raw(2, 6, 1, 8, dtype, seed=29)
    z_hat[0, :3] = -2.0 * z[0, :3]  # some reads anti-aligned (|cos| = 1), some random
    got = mem.latent_margin_loss(z_hat, z, zeta)
    torch.testing.assert_close(got, ref_latent_margin(z_hat, z, zeta).to(dtype), **TOL[dtype])


def test_latent_margin_sign_check():
    """maam.md: L_lat(z_hat = z) = 1 - zeta = 0.9; L_lat(z_hat orthogonal to z) = 0; |cos| so z_hat = -z gives 0.9.

    Eq. 9 pushes the read AWAY from the query: it is not 1 - cos and not max(zeta - cos, 0).
    """
    z, _ = _raw(3, 4, 1, 6, seed=30)
    torch.testing.assert_close(mem.latent_margin_loss(z, z, 0.1), torch.tensor(0.9, dtype=torch.float64))
    torch.testing.assert_close(mem.latent_margin_loss(-3.0 * z, z, 0.1), torch.tensor(0.9, dtype=torch.float64))
    a = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 2.0, 0.0]], dtype=torch.float64)
    assert float(mem.latent_margin_loss(a, b, 0.1)) == 0.0
    assert float(mem.latent_margin_loss(torch.zeros_like(a), b, 0.1)) == 0.0  # a zero read has cosine 0
    with pytest.raises(ValueError, match="same shape"):
        mem.latent_margin_loss(a, b[:, :2], 0.1)


# ---------------------------------------------------------------------------------------------------------------
# STD Eq. 10-11: deep K-means
# ---------------------------------------------------------------------------------------------------------------


def _rc(N, K, D, dtype=torch.float64, seed=0):
    """Representations (N, D) and centres (K, D) in [0, 1], STD's normalised range."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(N, D, generator=g, dtype=torch.float64).to(dtype)
    c = torch.rand(K, D, generator=g, dtype=torch.float64).to(dtype)
    return r, c


@case
@pytest.mark.parametrize("N,K,D", [(1, 1, 1), (7, 4, 3), (20, 8, 16)])
@pytest.mark.parametrize("alpha", [0.0, 1.0, 25.0])
def test_cluster_ops_match_reference(N, K, D, alpha, dtype):
    r, c = _rc(N, K, D, dtype, seed=31)
    a = mem.soft_assignment(r, c, alpha)
    assert a.shape == (N, K) and a.dtype == dtype
    torch.testing.assert_close(a, ref_soft_assignment(r, c, alpha), **TOL[dtype])
    torch.testing.assert_close(a.sum(-1), torch.ones(N, dtype=dtype), **TOL[dtype])
    d = mem.cluster_distance(r, c, alpha)
    assert d.shape == (N,)
    torch.testing.assert_close(d, ref_cluster_distance(r, c, alpha), **TOL[dtype])


@case
@pytest.mark.parametrize("B,D,H,W", [(1, 3, 1, 1), (2, 5, 3, 4), (3, 8, 4, 4)])
def test_cluster_loss_matches_reference(B, D, H, W, dtype):
    g = torch.Generator().manual_seed(32)
    r_map = torch.rand(B, D, H, W, generator=g, dtype=torch.float64).to(dtype)
    c = torch.rand(6, D, generator=g, dtype=torch.float64).to(dtype)
    for alpha in (0.0, 5.0):
        loss = mem.cluster_loss(r_map, c, alpha)
        assert loss.shape == ()
        torch.testing.assert_close(loss, ref_cluster_loss(r_map, c, alpha), **TOL[dtype])
        dmap = mem.cluster_distance_map(r_map, c, alpha)
        assert dmap.shape == (B, H, W)
        torch.testing.assert_close(dmap[1 % B, H - 1, 0],
                                   mem.cluster_distance(r_map[1 % B, :, H - 1, 0].unsqueeze(0), c, alpha)[0])


def test_cluster_distance_limits():
    """std.md test 3: alpha -> inf gives min_k ||r - c_k||^2, alpha = 0 gives mean_k ||r - c_k||^2.

    An implementation that squares inside the exponent, drops the square in the weight or divides by alpha fails.
    """
    r, c = _rc(30, 5, 4, seed=33)
    d2 = torch.cdist(r, c).square()  # (N, K)
    torch.testing.assert_close(mem.cluster_distance(r, c, 0.0), d2.mean(-1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mem.cluster_distance(r, c, 1e5), d2.min(-1).values, rtol=1e-9, atol=1e-12)
    # the soft assignment uses the plain distance: a_k proportional to exp(-alpha ||r - c_k||)
    a = mem.soft_assignment(r, c, 2.0)
    ratio = a[:, 0] / a[:, 1]
    torch.testing.assert_close(ratio, torch.exp(-2.0 * (d2[:, 0].sqrt() - d2[:, 1].sqrt())), rtol=1e-10, atol=0)


def test_cluster_loss_reduction():
    """Eq. 11 sums over locations (doubling the map doubles the loss per clip); the batch is averaged."""
    g = torch.Generator().manual_seed(34)
    r_map = torch.rand(1, 4, 3, 3, generator=g, dtype=torch.float64)
    c = torch.rand(5, 4, generator=g, dtype=torch.float64)
    one = mem.cluster_loss(r_map, c, 3.0)
    torch.testing.assert_close(mem.cluster_loss(torch.cat([r_map, r_map], dim=3), c, 3.0), 2 * one)
    torch.testing.assert_close(mem.cluster_loss(torch.cat([r_map, r_map], dim=0), c, 3.0), one)


def test_cluster_gradient_at_a_centre_is_finite():
    r, c = _rc(4, 3, 5, seed=35)
    c = c.clone()
    c[1] = r[2]  # a representation sitting exactly on a centre (e.g. a singleton cluster after K-means)
    rr, cc = r.clone().requires_grad_(True), c.clone().requires_grad_(True)
    mem.cluster_distance(rr, cc, 25.0).sum().backward()
    assert torch.isfinite(rr.grad).all() and torch.isfinite(cc.grad).all()


def test_cluster_shape_validation():
    r, c = _rc(4, 3, 5)
    with pytest.raises(ValueError, match="dimension mismatch"):
        mem.cluster_distance(r, c[:, :4], 1.0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        mem.soft_assignment(r.unsqueeze(0), c, 1.0)
    with pytest.raises(ValueError, match=r"\(B, D, H, W\)"):
        mem.cluster_loss(r, c, 1.0)


def test_kmeans_init_equals_sklearn():
    from sklearn.cluster import KMeans

    g = torch.Generator().manual_seed(36)
    blobs = torch.rand(6, 8, generator=g, dtype=torch.float64)
    samples = (blobs.repeat_interleave(40, 0) + 0.05 * torch.randn(240, 8, generator=g, dtype=torch.float64))
    for dtype in (torch.float64, torch.float32):
        x = samples.to(dtype)
        centres = mem.kmeans_init(x, 6, seed=3, n_init=2)
        assert centres.shape == (6, 8) and centres.dtype == dtype
        expected = KMeans(n_clusters=6, init="k-means++", n_init=2, random_state=3).fit(x.numpy()).cluster_centers_
        assert torch.equal(centres, torch.as_tensor(expected, dtype=dtype))
        assert torch.equal(mem.kmeans_init(x, 6, seed=3, n_init=2), centres), "fixed seed: deterministic"
    default = mem.kmeans_init(samples, 6, seed=0)
    expected = KMeans(n_clusters=6, init="k-means++", n_init=10, random_state=0).fit(samples.numpy()).cluster_centers_
    assert torch.equal(default, torch.as_tensor(expected))
    with pytest.raises(ValueError, match="k must be"):
        mem.kmeans_init(samples[:3], 6, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# Gradients of the new ops
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shrinkage_read", "hard_shrinkage", "entropy", "latent", "triplet", "compact_sq",
                                  "separate_sq", "cluster_loss", "cosine"])
def test_gradcheck_new_ops(name):
    q, items = _raw(2, 3, 5, 4, seed=37)
    q.requires_grad_(True)
    items.requires_grad_(True)
    if name == "shrinkage_read":
        fn, inputs = (lambda a, b: mem.shrinkage_read(a, b, 1.0 / 5)), (q, items)
    elif name == "cosine":
        fn, inputs = mem.cosine_similarity, (q, items)
    elif name == "hard_shrinkage":
        s = torch.softmax(3 * q.detach(), -1).requires_grad_(True)
        fn, inputs = (lambda a: mem.hard_shrinkage(a, 0.25)), (s,)
    elif name == "entropy":
        w = torch.softmax(q.detach(), -1).requires_grad_(True)
        fn, inputs = mem.entropy_loss, (w,)
    elif name == "latent":
        z_hat = torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        fn, inputs = (lambda a, b: mem.latent_margin_loss(a, b, 0.1)), (z_hat.requires_grad_(True), q)
    elif name == "triplet":
        a, p, n = (x.detach().reshape(6, 4).clone().requires_grad_(True) for x in (q, 0.5 * q.flip(0), q.flip(1)))
        fn, inputs = (lambda x, y, z: mem.triplet_loss(x, y, z, 1.0)), (a, p, n)
    elif name in ("compact_sq", "separate_sq"):
        qu, iu = make(2, 5, 4, 6, seed=10)
        qu.requires_grad_(True)
        if name == "compact_sq":
            fn = lambda a: mem.compactness_loss(a, iu, squared=True)  # noqa: E731
        else:
            fn = lambda a: mem.separateness_loss(a, iu, 0.5, squared=True)  # noqa: E731
        inputs = (qu,)
    else:
        g = torch.Generator().manual_seed(2)
        r_map = torch.rand(2, 4, 2, 3, generator=g, dtype=torch.float64).requires_grad_(True)
        c = torch.rand(3, 4, generator=g, dtype=torch.float64).requires_grad_(True)
        fn, inputs = (lambda a, b: mem.cluster_loss(a, b, 5.0)), (r_map, c)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5)


def test_public_api():
    """Every public name is importable from vadlab.memory (old MNAD callers unchanged) and listed in __all__."""
    names = ["matching_logits", "read_weights", "read", "read_and_concat", "nearest_items", "update",
             "weighted_regular_score", "compactness_loss", "separateness_loss", "feature_distance",
             "cosine_similarity", "hard_shrinkage", "shrinkage_read", "entropy_loss", "latent_margin_loss",
             "triplet_loss", "soft_assignment", "cluster_distance", "cluster_distance_map", "cluster_loss",
             "kmeans_init", "reference_similarity"]
    constants = ["MAAM_SIMILARITIES"]  # the similarities MAAM-Net's read accepts (issue 22)
    for name in names:
        assert callable(getattr(mem, name)) and name in mem.__all__
    assert set(mem.MAAM_SIMILARITIES) == {"cosine", "reference"}
    assert sorted(mem.__all__) == sorted(names + constants)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@case
def test_cuda_matches_cpu_new_ops(dtype):
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else TOL[dtype]
    cpu = lambda t: t.detach().cpu()  # noqa: E731
    q, items = make(3, 64, 10, 32, dtype, seed=11)
    qc, ic = q.cuda(), items.cuda()
    fm = torch.tensor([True, False, True])
    torch.testing.assert_close(cpu(mem.update(qc, ic, fm.cuda(), max_renorm=False)),
                               mem.update(q, items, fm, max_renorm=False), **tol)
    for sq in (False, True):
        torch.testing.assert_close(cpu(mem.compactness_loss(qc, ic, squared=sq, query_mask=fm.cuda())),
                                   mem.compactness_loss(q, items, squared=sq, query_mask=fm), **tol)
        torch.testing.assert_close(cpu(mem.separateness_loss(qc, ic, 1.0, squared=sq, query_mask=fm)),
                                   mem.separateness_loss(q, items, 1.0, squared=sq, query_mask=fm), **tol)
        torch.testing.assert_close(cpu(mem.feature_distance(qc, ic, squared=sq)),
                                   mem.feature_distance(q, items, squared=sq), **tol)
    rq, ri = _raw(3, 64, 100, 32, dtype, seed=38)
    zc, wc = mem.shrinkage_read(rq.cuda(), ri.cuda(), 0.01)
    z, w = mem.shrinkage_read(rq, ri, 0.01)
    torch.testing.assert_close(cpu(zc), z, **tol)
    torch.testing.assert_close(cpu(wc), w, **tol)
    torch.testing.assert_close(cpu(mem.entropy_loss(wc)), mem.entropy_loss(w), **tol)
    torch.testing.assert_close(cpu(mem.latent_margin_loss(zc, rq.cuda(), 0.1)), mem.latent_margin_loss(z, rq, 0.1),
                               **tol)
    a, p, n = rq[0], rq[1], rq[2]
    torch.testing.assert_close(cpu(mem.triplet_loss(a.cuda(), p.cuda(), n.cuda(), 1.0)),
                               mem.triplet_loss(a, p, n, 1.0), **tol)
    r_map = torch.rand(2, 16, 8, 8, dtype=dtype)
    c = torch.rand(8, 16, dtype=dtype)
    torch.testing.assert_close(cpu(mem.cluster_loss(r_map.cuda(), c.cuda(), 25.0)), mem.cluster_loss(r_map, c, 25.0),
                               **tol)
    rg = r_map.cuda().requires_grad_(True)
    cg = c.cuda().requires_grad_(True)
    mem.cluster_loss(rg, cg, 25.0).backward()
    assert torch.isfinite(rg.grad).all() and torch.isfinite(cg.grad).all()
    centres = mem.kmeans_init(r_map.cuda().permute(0, 2, 3, 1).reshape(-1, 16), 8, seed=0, n_init=1)
    assert centres.is_cuda and centres.shape == (8, 16)


# --- usage-balanced assignment (vadlab's option against collapse, issue 23) -------------------------------------------
def test_balanced_update_moves_every_item_when_one_item_is_nearest_to_all_queries():
    memory = mem
    from vadlab.memory.update import balanced_assignment

    g = torch.Generator().manual_seed(0)
    items = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=1)
    # 64 queries, all nearest to item 0 but spread around it
    queries = torch.nn.functional.normalize(8 * items[0] + torch.randn(1, 64, 16, generator=g), dim=-1)
    assert int((queries[0] @ items.T).argmax(-1).unique().numel()) == 1
    nearest = memory.update(queries, items, max_renorm=False)
    moved_nearest = (nearest - items).norm(dim=1) > 1e-7
    assert moved_nearest.tolist() == [True, False, False, False]  # the collapse: only item 0 moves
    balanced = memory.update(queries, items, max_renorm=False, assign="balanced")
    assert bool(((balanced - items).norm(dim=1) > 1e-7).all())  # every item takes queries
    counts = torch.bincount(balanced_assignment(queries[0] @ items.T, torch.ones(64, dtype=torch.bool)), minlength=4)
    assert int(counts.min()) >= 8 and int(counts.max()) <= 24  # about 64 / 4 each
    # excluded frames stay out; nothing allowed: items unchanged
    mask = torch.tensor([False])
    assert torch.equal(memory.update(queries, items, mask, assign="balanced"), items)
    with pytest.raises(ValueError, match="assign"):
        memory.update(queries, items, assign="sinkhorn")


# ---------------------------------------------------------------------------------------------------------------
# MAAM: the public code's similarity; float32 addressing under autocast (issue 22)
# ---------------------------------------------------------------------------------------------------------------
def test_reference_similarity_by_hand():
    """(q.m + eps) / (sum_c q_c^2 m_c^2 + eps), the public code's `cos_sim`: q = (1, 2) with m = (3, -1) gives
    1 / 13, with m = (2, 0) 2 / 4; doubling m halves it (not scale-invariant, unlike Eq. 1)."""
    q = torch.tensor([[[1.0, 2.0]]], dtype=torch.float64)
    items = torch.tensor([[3.0, -1.0], [2.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    s = mem.reference_similarity(q, items)
    torch.testing.assert_close(s, torch.tensor([[[1 / 13, 0.5, 0.25]]], dtype=torch.float64))
    assert float(mem.cosine_similarity(q, items)[0, 0, 1]) == pytest.approx(1 / 5 ** 0.5)  # Eq. 1 differs


def test_shrinkage_read_with_the_reference_similarity():
    q, items = make(2, 3, 7, 5, dtype=torch.float64, seed=3)
    z_hat, w = mem.shrinkage_read(q, items, 1 / 7, similarity="reference")
    w_manual = mem.hard_shrinkage(torch.softmax(mem.reference_similarity(q, items), -1), 1 / 7)
    torch.testing.assert_close(w, w_manual)
    torch.testing.assert_close(z_hat, w_manual @ items)
    _, w_scaled = mem.shrinkage_read(q, 0.25 * items, 1 / 7, similarity="reference")
    assert not torch.allclose(w_scaled, w)  # scaling the items changes the reference weights
    with pytest.raises(ValueError, match="similarity"):
        mem.shrinkage_read(q, items, 1 / 7, similarity="dot")


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_shrinkage_mask_under_autocast_equals_float32(device):
    """N = 2000, lambda = 1/N (Avenue, SHT): the shrinkage mask of a read under bf16 autocast equals the float32
    one, and an unguarded bf16 similarity would keep other items (the test can fail)."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA")
    if device == "cpu" and not torch.amp.is_autocast_available("cpu"):
        pytest.skip("this torch has no CPU autocast")
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 40, 64, generator=gen).to(torch.bfloat16).to(device)  # an encoder's output under autocast
    items = (0.02 * torch.randn(2000, 64, generator=gen)).to(device)  # the memory: a float32 parameter
    lam = 1 / 2000
    z32, w32 = mem.shrinkage_read(q.float(), items, lam)  # float32, no autocast
    with torch.autocast(device, dtype=torch.bfloat16):
        z_auto, w_auto = mem.shrinkage_read(q, items, lam)
        unguarded = torch.softmax(mem.cosine_similarity(q.float(), items), -1)
    assert w_auto.dtype == torch.float32 and z_auto.dtype == torch.float32
    assert torch.equal(w_auto > 0, w32 > 0)
    torch.testing.assert_close(w_auto, w32)
    torch.testing.assert_close(z_auto, z32)
    assert unguarded.dtype == torch.bfloat16  # without the guard autocast computes the similarity in bf16 ...
    assert int(((unguarded.float() > lam) != (w32 > 0)).sum()) > 0  # ... and the threshold keeps other items
