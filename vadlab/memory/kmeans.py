"""STD's deep K-means cluster (Chang et al. 2021, Sec. 3.5, Eq. 10-11) and its K-means initialisation.

Conventions: ``r`` (N, D) representations (STD: the concatenation of z_a and z_m at one location, normalised into
[0, 1]); ``centres`` (K, D) the cluster centres c_k; ``r_map`` (B, D, H, W) one representation map per clip.

Choices (where the paper leaves room)
-------------------------------------
1. Eq. 10 as printed: the soft assignment a_k = softmax_k(-alpha ||r - c_k||_2) uses the PLAIN distance, the
   weighted term the SQUARED distance. alpha multiplies the distance: it is an inverse temperature (alpha -> inf
   gives min_k ||r - c_k||^2, alpha = 0 the mean over k). The public STD code uses the unsquared distance in both.
2. Eq. 11 sums D over the H_r x W_r locations of one clip; the batch reduction is unstated: we average the
   per-clip sums over the B clips (so the loss weight lambda_r does not scale with batch size, but does with the
   map size, as in the paper).
3. Distances are computed pairwise without the ||r||^2 + ||c||^2 - 2 r.c expansion (no cancellation error), and their
   gradient at r == c_k is 0 (not NaN).
4. ``kmeans_init`` is sklearn's KMeans with k-means++ seeding (the paper's ref. [15]) and a fixed ``n_init``
   (default 10), run in the samples' dtype on CPU; the centres come back in the samples' dtype and device.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["soft_assignment", "cluster_distance", "cluster_distance_map", "cluster_loss", "kmeans_init"]


def _check_rc(r: Tensor, centres: Tensor) -> None:
    """Shape checks only (host-side metadata, no device sync)."""
    if r.dim() != 2:
        raise ValueError(f"r must have shape (N, D), got {tuple(r.shape)}")
    if centres.dim() != 2 or centres.shape[0] < 1:
        raise ValueError(f"centres must have shape (K, D) with K >= 1, got {tuple(centres.shape)}")
    if r.shape[-1] != centres.shape[-1]:
        raise ValueError(f"dimension mismatch: r has D={r.shape[-1]}, centres have D={centres.shape[-1]}")


def _distances(r: Tensor, centres: Tensor) -> Tensor:
    """||r_n - c_k||_2 for every pair: (N, D) x (K, D) -> (N, K)."""
    _check_rc(r, centres)
    return torch.cdist(r, centres, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")  # (N, K)


def soft_assignment(r: Tensor, centres: Tensor, alpha: float) -> Tensor:
    """STD Eq. 10, first factor: a_k = exp(-alpha ||r - c_k||_2) / sum_j exp(-alpha ||r - c_j||_2): (N, K)."""
    dist = _distances(r, centres)  # (N, K), unsquared distances
    return torch.softmax(-alpha * dist, dim=-1)  # (N, K), sums to 1 over k


def cluster_distance(r: Tensor, centres: Tensor, alpha: float) -> Tensor:
    """STD Eq. 10: D(r, C) = sum_k a_k ||r - c_k||_2^2 per representation: (N,)."""
    dist = _distances(r, centres)  # (N, K), ||r - c_k||_2
    a = torch.softmax(-alpha * dist, dim=-1)  # (N, K), soft assignment on the plain distance
    return (a * dist.square()).sum(dim=-1)  # (N,), weighted SQUARED distance, Eq. 10


def cluster_distance_map(r_map: Tensor, centres: Tensor, alpha: float) -> Tensor:
    """STD Eq. 10 at every location of (B, D, H, W) maps: (B, H, W) (the map Sec. 3.7 upsamples to D_u)."""
    if r_map.dim() != 4:
        raise ValueError(f"r_map must have shape (B, D, H, W), got {tuple(r_map.shape)}")
    B, D, H, W = r_map.shape
    r = r_map.permute(0, 2, 3, 1).reshape(B * H * W, D)  # (B*H*W, D), one representation per location
    return cluster_distance(r, centres, alpha).reshape(B, H, W)  # (B, H, W), Eq. 10 per location


def cluster_loss(r_map: Tensor, centres: Tensor, alpha: float, reduction: str = "sum") -> Tensor:
    """STD Eq. 11: L = sum_{h,w} D(r_hw, C) per clip (``reduction="sum"``, as printed) or the mean over the
    locations (``"mean"``: independent of the map size), then the MEAN over the B clips (module choice 2): scalar."""
    per_location = cluster_distance_map(r_map, centres, alpha)  # (B, H, W), Eq. 10
    if reduction == "sum":
        return per_location.sum(dim=(1, 2)).mean()  # scalar: Eq. 11 sum over locations, mean over the batch
    if reduction == "mean":
        return per_location.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def kmeans_init(samples: Tensor, k: int, seed: int, n_init: int = 10) -> Tensor:
    """STD Sec. 3.5: initial centres (k, D) by K-means with k-means++ seeding on ``samples`` (N, D), N >= k.

    ``sklearn.cluster.KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed)``: deterministic for
    a fixed seed. Run on CPU in the samples' dtype; returned in the samples' dtype and on their device.
    """
    from sklearn.cluster import KMeans  # local import: only STD's initialisation needs sklearn

    if samples.dim() != 2:
        raise ValueError(f"samples must have shape (N, D), got {tuple(samples.shape)}")
    if not 1 <= k <= samples.shape[0]:
        raise ValueError(f"k must be in [1, N] = [1, {samples.shape[0]}], got {k}")
    x = samples.detach().cpu().numpy()  # (N, D), sklearn keeps float32 / float64 as given
    km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(x)
    return torch.as_tensor(km.cluster_centers_, dtype=samples.dtype, device=samples.device)  # (k, D)
