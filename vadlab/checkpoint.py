"""Checkpoints that cannot run code: `save`, `load` and `convert`.

A checkpoint (`checkpoint.pt`) holds tensors and plain data only: the config as a dict, the model's, optimiser's and
scheduler's state dicts, the history (a list of dicts of numbers), and the RNG states stored as tensors
(`rng_to_plain`). Every read goes through `torch.load(weights_only=True)`, PyTorch's restricted unpickler, which
refuses any other Python object instead of building it, so a crafted `checkpoint.pt` (a pickle whose loading would
call a function) is refused with a `DataError` (the CLI exits 2) and nothing in it runs.

- **Format 2** (written now): RNG states as tensors. **Format 1** (written before): RNG states as NumPy arrays and
  tuples; read under the same restricted unpickler with three NumPy names allowed (`numpy.ndarray`, `numpy.dtype`
  and the array constructor `_reconstruct`: they build arrays, and call nothing else), then converted in memory. A
  format-1 file that needs anything more is refused with the command that converts it, for a user who trusts it:
  `python -m vadlab.checkpoint convert RUN/checkpoint.pt` (the one place a full unpickle happens, run knowingly; the
  original is kept beside it as `checkpoint.pt.unsafe`).
- **Nothing non-finite.** `save` refuses a state whose tensors hold NaN or Inf (`vadlab.guards`), so a diverged
  model is never checkpointed; `load(..., check_finite=True)` (evaluate, score, resume) refuses one, naming the
  tensor.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vadlab.errors import DataError, DivergenceError, VadlabError
from vadlab.guards import non_finite_tensors
from vadlab.io import atomic_path

FORMAT = 2  # 2: RNG states as tensors (weights_only loads); 1: RNG states as NumPy arrays
READABLE = (1, 2)
CONVERT = "python -m vadlab.checkpoint convert"


def _numpy_globals() -> list:
    """The NumPy names a format-1 checkpoint's RNG state needs (an array of uint32 and its dtype)."""
    names = [np.ndarray, np.dtype]
    core = getattr(np, "_core", None) or np.core
    names.append(core.multiarray._reconstruct)
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        names += [getattr(dtypes, n) for n in ("UInt32DType", "Int64DType", "Float64DType") if hasattr(dtypes, n)]
    return names


# --- RNG states as tensors ----------------------------------------------------------------------------------------
def rng_to_plain(rng: dict) -> dict:
    """`engine._get_rng_state()` (torch tensor, NumPy's tuple, Python's tuple, CUDA tensors) as tensors and numbers."""
    out = dict(rng)
    if "numpy" in rng and isinstance(rng["numpy"], tuple):
        kind, keys, pos, has_gauss, gauss = rng["numpy"]
        out["numpy"] = {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
                        "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}
    if "python" in rng and isinstance(rng["python"], tuple):
        version, state, gauss = rng["python"]
        out["python"] = {"version": int(version), "state": torch.tensor(state, dtype=torch.int64),
                         "gauss": None if gauss is None else float(gauss)}
    return out


def rng_from_plain(rng: dict) -> dict:
    """The inverse of `rng_to_plain`: what `np.random.set_state` and `random.setstate` take back."""
    out = dict(rng)
    if isinstance(rng.get("numpy"), dict):
        n = rng["numpy"]
        out["numpy"] = (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    elif isinstance(rng.get("numpy"), tuple):  # format 1, read with the NumPy names allowed
        kind, keys, pos, has_gauss, gauss = rng["numpy"]
        out["numpy"] = (kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss))
    if isinstance(rng.get("python"), dict):
        p = rng["python"]
        out["python"] = (p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"])
    return out


def _map_rng(state: dict, fn) -> dict:
    state = dict(state)
    if isinstance(state.get("rng"), dict):
        state["rng"] = fn(state["rng"])
    position = state.get("position")
    if isinstance(position, dict) and isinstance(position.get("rng_epoch_start"), dict):
        state["position"] = {**position, "rng_epoch_start": fn(position["rng_epoch_start"])}
    return state


# --- save and load ------------------------------------------------------------------------------------------------
def check_finite(state: dict, path: Path | str, keys=("model",)) -> None:
    """DivergenceError naming the tensors of `state[key]` (for each key) that hold NaN or Inf."""
    bad = []
    for key in keys:
        part = state.get(key)
        if isinstance(part, dict):
            bad += [f"{key}.{name}" + (f" ({what})" if what else "") for name, what in non_finite_tensors(part)]
    if bad:
        shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
        raise DivergenceError(f"{path}: non-finite values (NaN or Inf) in {len(bad)} tensor(s): {shown}; a diverged "
                              "model is not used. Retrain it (a lower lr, --set lr=..., or grad_clip may help)")


def save(path: str | Path, state: dict) -> None:
    """Write `state` atomically as a format-2 checkpoint: RNG states as tensors, stamped with `format`. A state whose
    model or optimiser holds a non-finite tensor is refused (`DivergenceError`) and nothing is written."""
    path = Path(path)
    check_finite(state, path, keys=("model", "optimizer"))
    safe = _map_rng(state, rng_to_plain)
    safe["format"] = FORMAT
    with atomic_path(path) as tmp:
        torch.save(safe, tmp)


def _reason(exc: Exception) -> str:
    """The line of torch's refusal that names what was refused (e.g. 'unsupported GLOBAL posix.system')."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation",
                                                              "(1)", "(2)", "Please file an issue"))]
    return (useful or lines or [type(exc).__name__])[0].split(". Please use")[0][:200]


def _safe_load(path: Path, device) -> Any:
    with warnings.catch_warnings():  # torch's note on an unusual pickle protocol: a refusal below says enough
        warnings.simplefilter("ignore", UserWarning)
        try:
            return torch.load(path, map_location=device, weights_only=True)
        except pickle.UnpicklingError as exc:
            first = exc
        try:  # format 1: NumPy RNG arrays; nothing but array construction is allowed in addition
            with torch.serialization.safe_globals(_numpy_globals()):
                return torch.load(path, map_location=device, weights_only=True)
        except pickle.UnpicklingError as exc:
            first = exc  # what even the NumPy names do not cover
    raise DataError(f"{path}: refused: it holds Python objects that a safe load does not build ({_reason(first)}). "
                    "Nothing in it was run. A checkpoint written by vadlab holds tensors and plain data only; if this "
                    f"file is yours and you trust it (an older vadlab's), convert it with `{CONVERT} {path}` and run "
                    "again") from None


def load(path: str | Path, device="cpu", *, method: str | None = None, check_finite_model: bool = True) -> dict:
    """A checkpoint's state (RNG states back in their native form), read with `weights_only=True`.

    Refuses (DataError, the CLI exits 2): a file the safe loader will not read (the message says how to convert an
    old one), anything but a vadlab checkpoint, another format, another method than `method` (when given), and, with
    `check_finite_model`, a model holding NaN or Inf (DivergenceError naming the tensors)."""
    path = Path(path)
    try:
        state = _safe_load(path, device)
    except VadlabError:
        raise
    except Exception as exc:  # a torn or foreign file: name it, whatever torch raises
        raise DataError(f"{path}: not a readable vadlab checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "method" not in state:
        raise DataError(f"{path}: not a vadlab checkpoint")
    version = state.get("format", 1)
    if version not in READABLE:
        raise DataError(f"{path}: checkpoint format {version!r}, but this vadlab reads formats "
                        f"{', '.join(map(str, READABLE))}; use the vadlab version that wrote it")
    if method is not None and state["method"] != method:
        raise DataError(f"{path}: holds a {state['method']} run, not {method}")
    if check_finite_model:
        check_finite(state, path)
    return _map_rng(state, rng_from_plain)


def _plain(obj, where, key: str = ""):
    """`obj` as tensors and plain data: NumPy arrays as tensors (the RNG tuple keeps its arrays for `rng_to_plain`),
    NumPy scalars as numbers, paths as strings, dataclasses as dicts; anything else is named and refused."""
    import dataclasses

    if obj is None or isinstance(obj, (bool, int, float, str, bytes)) or torch.is_tensor(obj):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj if key.endswith(".numpy.1") else torch.from_numpy(obj.copy())
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj), where, key)
    if isinstance(obj, dict):
        return {k: _plain(v, where, f"{key}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, where, f"{key}.{i}") for i, v in enumerate(obj))
    raise DataError(f"{where}: {key.lstrip('.') or 'the checkpoint'} holds a {type(obj).__name__}, which has no plain "
                    "form; this file cannot be converted")


def convert(path: str | Path) -> Path:
    """Rewrite an older checkpoint you trust as a format-2 one (tensors and plain data only).

    This is the one full unpickle in vadlab (`weights_only=False`: the file's code runs): call it only on a file you
    wrote yourself. The original is kept beside it as `<name>.unsafe`. Returns the path of the kept original."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint")
    try:
        _safe_load(path, "cpu")
        print(f"{path}: already loads safely; nothing to convert")
        return path
    except DataError:
        pass
    state = torch.load(path, map_location="cpu", weights_only=False)  # knowingly: the user trusts this file
    if not isinstance(state, dict) or "method" not in state:
        raise DataError(f"{path}: not a vadlab checkpoint")
    state = _plain({k: v for k, v in state.items() if k != "format"}, path)
    kept = path.with_name(path.name + ".unsafe")
    if kept.exists():
        raise DataError(f"{kept}: exists; move it away first (it would be overwritten)")
    path.rename(kept)
    try:
        save(path, state)
        load(path, "cpu", check_finite_model=False)  # it reads back under the safe loader
    except Exception:
        path.unlink(missing_ok=True)
        kept.rename(path)
        raise
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vadlab.checkpoint",
                                     description="convert an older vadlab checkpoint you trust to the safe format")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="rewrite CHECKPOINT (runs its pickle: only for a file you trust)")
    p.add_argument("checkpoint")
    args = parser.parse_args(argv)
    try:
        kept = convert(args.checkpoint)
    except VadlabError as exc:
        print(f"vadlab: error: {exc}", file=sys.stderr)
        return exc.exit_status
    if kept != Path(args.checkpoint):
        print(f"converted {args.checkpoint}; the original is kept as {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
