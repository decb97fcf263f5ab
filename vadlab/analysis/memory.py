"""Memory spaces of any method (the `Method.memory_spaces` hook), sampled for pictures such as MNAD's Fig. 6."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import default_collate

from vadlab.errors import ConfigError


def _device(method) -> torch.device:
    return next(iter(method.model.parameters())).device


def _spaces_of(method, data, indices) -> dict:
    """`method.memory_spaces` of the clips `indices` of `data`, batched on the model's device."""
    device = _device(method)
    batch = default_collate([data[int(i)] for i in indices])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    return method.memory_spaces(batch)


@torch.no_grad()
def memory_space_names(method, videos) -> list[str]:
    """Names of the memory spaces a method exposes ([] for a method without a memory)."""
    method.model.eval()
    return list(_spaces_of(method, method.test_dataset(videos), [0]))


@torch.no_grad()
def sample_memory_space(method, videos, space: str | None = None, *, n: int = 2000, seed: int = 0,
                        batch_size: int = 64) -> dict:
    """`n` queries of memory space `space` (default: the first) drawn uniformly (seeded) from all clips of `videos`.

    Returns numpy arrays: `queries` (n, C), `nearest` (n,) the item each query is matched to, `row` (n,) the
    query's row in its query map (0 = top of the frame; -1 when the space has no grid), `anomalous` (n,) the label
    of the scored frame, and `items` (M, C); plus `space` (its name) and `method` (the method's name); and, when the
    space has matching weights, `weights` (n, M), each query's matching probabilities over the items."""
    method.model.eval()
    data = method.test_dataset(videos)
    spaces = _spaces_of(method, data, [0])
    if not spaces:
        raise ConfigError(f"{method.name} exposes no memory space (Method.memory_spaces is empty for this config)")
    space = next(iter(spaces)) if space is None else space
    if space not in spaces:
        raise ConfigError(f"unknown memory space {space!r} of {method.name}; its spaces: {', '.join(spaces)}")

    first = spaces[space]
    k_total = first.queries.shape[1]  # queries per clip
    width = first.grid[1] if first.grid is not None else None
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(data) * k_total, size=min(n, len(data) * k_total), replace=False))
    clip_of, pos_of = picks // k_total, picks % k_total  # which clip, which query position
    keep = np.unique(clip_of)
    out = {"queries": [], "nearest": [], "row": [], "anomalous": []}
    weights = []
    items = first.items
    for start in range(0, len(keep), batch_size):
        chunk = keep[start:start + batch_size]
        ms = _spaces_of(method, data, chunk)[space]
        nearest = ms.nearest()  # (B, K)
        items = ms.items
        for b, ci in enumerate(chunk):
            pos = pos_of[clip_of == ci]
            video, t = data.index[ci]
            out["queries"].append(ms.queries[b, pos].float().cpu().numpy())
            out["nearest"].append(nearest[b, pos].cpu().numpy())
            out["row"].append(pos // width if width else np.full(len(pos), -1))
            out["anomalous"].append(np.full(len(pos), bool(data.labels[video][t])))
            if ms.weights is not None:
                weights.append(ms.weights[b, pos].float().cpu().numpy())  # (len(pos), M)
    sample = {k: np.concatenate(v) for k, v in out.items()}
    if weights:
        sample["weights"] = np.concatenate(weights)
    sample["items"] = items.float().cpu().numpy()
    sample["space"], sample["method"] = space, method.name
    return sample


def sample_spaces(methods: dict, videos, *, n: int = 2000, seed: int = 0) -> dict[str, dict[str, dict]]:
    """`sample_memory_space` of every memory space of every method: {label: {space: sample}} for {label: method}
    (e.g. a run and its no-separateness twin); a method without a memory gives {}."""
    return {label: {space: sample_memory_space(method, videos, space, n=n, seed=seed)
                    for space in memory_space_names(method, videos)}
            for label, method in methods.items()}


def heatmap_rows(sample: dict, k: int = 24, *, seed: int = 0) -> np.ndarray:
    """Indices of `k` queries of a sample for a matching-probability heatmap: up to half from anomalous frames
    (when there are any), the rest from normal ones, drawn seeded, anomalous ones last."""
    rng = np.random.default_rng(seed)
    anomalous = np.flatnonzero(sample["anomalous"])
    normal = np.flatnonzero(~np.asarray(sample["anomalous"], bool))
    n_abn = min(len(anomalous), k // 2)
    picks = [np.sort(rng.choice(normal, min(len(normal), k - n_abn), replace=False)),
             np.sort(rng.choice(anomalous, n_abn, replace=False))]
    return np.concatenate(picks).astype(int)


def matching_summary(samples: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per run and space: `max_prob_mean` (mean over queries of the largest matching probability: how sharply a
    query picks one item; the separateness loss should raise it), `items_used` (items nearest to at least one
    query), `usage_entropy` (entropy of the nearest-item histogram in bits; log2(M) when every item is used
    equally) and `items`."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label, per_space in samples.items():
        for space, s in per_space.items():
            m = len(s["items"])
            counts = np.bincount(np.asarray(s["nearest"], int), minlength=m).astype(float)
            p = counts[counts > 0] / counts.sum()
            row = {"items": float(m), "items_used": float((counts > 0).sum()),
                   "usage_entropy": float(-(p * np.log2(p)).sum())}
            if "weights" in s:
                row["max_prob_mean"] = float(np.asarray(s["weights"]).max(-1).mean())
            out.setdefault(label, {})[space] = row
    return out


# --- memory health (issue 23): is every item used, are the triplets active ------------------------------------------
def assignment_health(nearest, items: int) -> dict[str, float]:
    """How the queries spread over `items` items, from the index of each query's nearest item (any shape):
    `top_item_share` (share of the queries whose nearest item is the most used one: 1/M when every item takes as
    many, 1 when one item takes all), `entropy_nats` (entropy of the nearest-item histogram, natural log: log M at
    uniform use, 0 when one item takes all), `entropy_normalised` (entropy_nats / log M, in [0, 1]), `items_used`
    (items nearest to at least one query) and `queries`."""
    counts = np.bincount(np.asarray(nearest, dtype=np.int64).ravel(), minlength=items).astype(float)
    total = counts.sum()
    if total == 0:
        return {"queries": 0, "items": items, "items_used": 0, "top_item_share": float("nan"),
                "entropy_nats": float("nan"), "entropy_normalised": float("nan")}
    p = counts[counts > 0] / total
    entropy = float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: -0.0 -> 0.0
    return {"queries": int(total), "items": items, "items_used": int((counts > 0).sum()),
            "top_item_share": float(counts.max() / total), "entropy_nats": entropy,
            "entropy_normalised": entropy / float(np.log(items)) if items > 1 else 0.0}


def _health_batches(method, dataset, max_batches: int, seed: int) -> list[list[int]]:
    """Up to `max_batches` training batches: the method's own batch sampler at epoch 0 (DREAM: each batch with its
    labelled anomalies, so it holds triplets) or a seeded shuffle."""
    bs = method.config.batch_size
    batches = method.train_batches(dataset, epoch=0, seed=seed, rank=0, world_size=1, batch_size=bs)
    if batches is None:
        order = np.random.default_rng(seed).permutation(len(dataset))
        batches = [order[i:i + bs].tolist() for i in range(0, len(order), bs)]
    out = []
    for batch in batches:
        out.append([int(i) for i in batch])
        if len(out) >= max_batches:
            break
    return out


@torch.no_grad()
def memory_health(method, dataset, *, max_batches: int = 16, seed: int = 0) -> dict[str, dict]:
    """Memory health of a trained `method` on `max_batches` batches of its training clips `dataset` (eval mode):
    per memory space of `Method.memory_spaces`, `assignment_health` of the nearest items of the queries that
    space's update takes (`MemorySpace.routed`; all queries where it is None), and, for a method with a
    `triplet_hinges` hook (DREAM), per discriminator branch `triplets` and `active_share`, the share of Eq. 5
    triplets with a positive loss, and `mean_hinge`. {} for a method without a memory or discriminator. The
    model's train/eval mode is restored."""
    was_training = method.model.training
    method.model.eval()
    device = _device(method)
    nearest: dict[str, list] = {}
    sizes: dict[str, int] = {}
    hinges: dict[str, list] = {}
    try:
        for indices in _health_batches(method, dataset, max_batches, seed):
            batch = default_collate([dataset[i] for i in indices])
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            for name, space in method.memory_spaces(batch).items():
                near = space.nearest()  # (B, K)
                if space.routed is not None:
                    near = near[space.routed.to(near.device)]
                nearest.setdefault(name, []).append(near.reshape(-1).cpu().numpy())
                sizes[name] = len(space.items)
            hook = getattr(method, "triplet_hinges", None)
            for branch, h in (hook(batch) if hook else {}).items():
                hinges.setdefault(branch, []).append(h.float().cpu().numpy())
    finally:
        method.model.train(was_training)
    out: dict[str, dict] = {name: assignment_health(np.concatenate(v), sizes[name]) for name, v in nearest.items()}
    for branch, v in hinges.items():
        h = np.concatenate(v)
        out[f"triplets_{branch}"] = {"triplets": int(len(h)), "active_share": float((h > 0).mean()),
                                     "mean_hinge": float(h.mean())}
    return out


def health_table(report: dict):
    """The memory health of an evaluated run (`report`, what `engine.evaluate_run` returns, or its metrics.json) as
    a table, one row per memory space (and per discriminator branch for DREAM's triplets): the top item's share
    (1/M at even use, 1 at collapse), the assignment entropy over log M (1 at even use, 0 at collapse), the items
    used, and for triplets the share with a positive Eq. 5 loss. Empty for a run without `memory_health` (trained
    before the diagnostic, or without a memory)."""
    import pandas as pd  # here, not at the top: the engine imports this module for memory_health

    rows = {}
    for name, h in report.get("memory_health", {}).items():
        if name.startswith("triplets_"):
            rows[name] = {"triplets": h["triplets"], "active triplet share": h["active_share"],
                          "mean hinge": h["mean_hinge"]}
        else:
            rows[name] = {"queries": h["queries"], "items used": f"{h['items_used']} of {h['items']}",
                          "top item's share": h["top_item_share"], "entropy / log M": h["entropy_normalised"]}
    return pd.DataFrame.from_dict(rows, orient="index").round(3)
