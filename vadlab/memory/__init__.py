"""Memory operations of the four memory/cluster methods of vadlab: MNAD, DREAM, MAAM-Net and STD.

Pure, batched tensor functions: no module state, no Python loop over frames, queries or items, no host sync
(no ``.item()``, no boolean-mask indexing) except ``kmeans_init`` (a one-off sklearn call), so they run unchanged on
CPU and CUDA, in float32 and float64. Plain loop references of every op are in ``vadlab.memory.reference``.

Papers: MNAD = Park, Noh, Ham, "Learning Memory-guided Normality for Anomaly Detection", CVPR 2020.
DREAM = Guo et al., "Discriminative-Generative Dual Memory Video Anomaly Detection". MAAM = Wang et al.,
"Memory-augmented appearance-motion network for video anomaly detection", PR 2023. STD = Chang et al., "Video
anomaly detection with spatio-temporal dissociation", PR 2021. Equation numbers are each paper's own.

Conventions
-----------
* ``queries``: (B, K, C) -- B frames, K = H*W queries per frame (a query map flattened over H, W), C channels.
  A model holding a (B, C, H, W) map passes ``q.flatten(2).transpose(1, 2)``.
* ``items``: (M, C) -- the M memory items.
* MNAD / DREAM: both are expected to be L2-normalised along C (the encoder ends in an L2 norm; the update
  re-normalises the items), so ``p_m^T q_k`` is the cosine similarity of MNAD Eq. 1. These functions take them as
  given and never renormalise the inputs silently: unnormalised inputs give dot products, not cosines. Only
  ``update`` normalises, and only its output, because MNAD Eq. 3 says so.
* MAAM: queries and items are NOT normalised (the items are learned parameters): ``cosine_similarity`` and
  ``shrinkage_read`` normalise inside, and are differentiable in both.
* STD: representations ``r`` (N, D) or maps (B, D, H, W), centres (K, D).

Which op serves which method
----------------------------
===========================  =========================================================================
op                           method: equation
===========================  =========================================================================
matching_logits              MNAD Eq. 1 exponent; DREAM Eq. 1 exponent
read_weights, read           MNAD Eq. 1-2; DREAM Eq. 1 and the read inside Eq. 2
read_and_concat              MNAD Sec. 3.1.2 ([q, read]); DREAM Eq. 2 (it writes [read, q])
nearest_items                MNAD Eq. 11, 13 (DREAM's p and n in Eq. 7-8, 11)
update(max_renorm=True)      MNAD Eq. 3-5 (training and gated test-time update)
update(max_renorm=False)     DREAM Eq. 3 (normality memory) and Eq. 4 (abnormality memory)
update(assign="balanced")    no paper: vadlab's usage-balanced (Sinkhorn) assignment against collapse (issue 23)
weighted_regular_score       MNAD Eq. 6-7 (the test-time update gate)
compactness_loss             MNAD Eq. 10-11 (squared=False); DREAM Eq. 7 (squared=True)
separateness_loss            MNAD Eq. 12-13 (squared=False); DREAM Eq. 8 (squared=True)
feature_distance             MNAD Eq. 14 (squared=False); DREAM Eq. 11 (squared=True)
triplet_loss                 DREAM Eq. 5 (squared distances)
cosine_similarity            MAAM Eq. 1
reference_similarity         MAAM: the public code's similarity (not a cosine; `similarity="reference"`)
hard_shrinkage               MAAM Eq. 3 and the renormalisation to w
shrinkage_read               MAAM Eq. 1-4
entropy_loss                 MAAM Eq. 8 (sparsity loss)
latent_margin_loss           MAAM Eq. 9 (margin-based latent loss)
soft_assignment              STD Eq. 10 (the soft-assignment factor)
cluster_distance(_map)       STD Eq. 10 (per representation / per location of a map)
cluster_loss                 STD Eq. 11 (sum over locations, mean over clips)
kmeans_init                  STD Sec. 3.5 (k-means++ initialisation of the centres)
===========================  =========================================================================

The choices made where a paper leaves room are listed in the docstrings of ``update``, ``losses`` and ``kmeans``
(modules ``vadlab.memory.update``, ``vadlab.memory.losses``, ``vadlab.memory.kmeans``) and
``addressing.hard_shrinkage``.
"""

from __future__ import annotations

from vadlab.memory.addressing import (
    MAAM_SIMILARITIES,
    cosine_similarity,
    hard_shrinkage,
    matching_logits,
    nearest_items,
    read,
    read_and_concat,
    read_weights,
    reference_similarity,
    shrinkage_read,
)
from vadlab.memory.kmeans import cluster_distance, cluster_distance_map, cluster_loss, kmeans_init, soft_assignment
from vadlab.memory.losses import (
    compactness_loss,
    entropy_loss,
    feature_distance,
    latent_margin_loss,
    separateness_loss,
    triplet_loss,
)
from vadlab.memory.update import update, weighted_regular_score

__all__ = [
    # MNAD / DREAM addressing
    "matching_logits",
    "read_weights",
    "read",
    "read_and_concat",
    "nearest_items",
    # MAAM addressing
    "cosine_similarity",
    "reference_similarity",
    "MAAM_SIMILARITIES",
    "hard_shrinkage",
    "shrinkage_read",
    # update rules (MNAD, DREAM) and MNAD's gate
    "update",
    "weighted_regular_score",
    # losses and distances
    "compactness_loss",
    "separateness_loss",
    "feature_distance",
    "triplet_loss",
    "entropy_loss",
    "latent_margin_loss",
    # STD deep K-means
    "soft_assignment",
    "cluster_distance",
    "cluster_distance_map",
    "cluster_loss",
    "kmeans_init",
]
