"""What one restored file leaves behind: its images, written atomically with their SHA-256
(:func:`write_outputs`), its seeds and JSON-ready info for the journal record, and the check
that a recorded file's outputs are still intact (resume).

Part of the files layer (:mod:`invkit.restoration.files`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..io import sha256_bytes, sha256_file
from .images import write_image
from .settings import RestoreSettings, output_names

__all__ = ["jsonable", "maybe_sha", "outputs_intact", "seeds", "write_outputs"]


def write_outputs(out: Path, key: str, res: Any, s: RestoreSettings) -> dict[str, dict[str, Any]]:
    """Write one file's images atomically; their paths (relative to ``out``) and SHA-256."""
    names = output_names(key, s)
    (out / names["restoration"]).parent.mkdir(parents=True, exist_ok=True)
    gray = res.x.shape[0] == 1
    depth = (s.bit_depth or res.bit_depth) if gray else 8
    alpha = res.alpha if depth == 8 else None
    written: dict[str, dict[str, Any]] = {}

    def put(kind: str, x: torch.Tensor, **kw: Any) -> None:
        path = out / names[kind]
        write_image(x, path, **kw)
        written[kind] = {"path": names[kind], "sha256": sha256_file(path)}

    put("restoration", res.x, bit_depth=depth, alpha=alpha)
    if s.degrade:
        if res.y.ndim == 3 and res.y.shape[0] in (1, 3):
            put("y", res.y, bit_depth=depth if res.y.shape[0] == 1 else 8)
        put("pinv", res.pinv, bit_depth=depth)
    if res.std is not None:
        # one gray map: the root mean variance over channels, white = the largest spread
        std = res.std.double().pow(2).mean(dim=0, keepdim=True).sqrt()
        scale = float(std.max())
        put("std", (std / scale * 2 - 1) if scale > 0 else std - 1, bit_depth=8)
        written["std"]["scale"] = scale
    if s.save_samples and res.samples is not None:
        for k, xk in enumerate(res.samples):
            put(f"sample{k}", xk, bit_depth=depth)
    return written


def seeds(s: RestoreSettings, index: int, mode: str, image_seed: Callable, sample_seed: Callable) -> dict[str, Any]:
    seeds: dict[str, Any] = {"index": index, "recipe": [sample_seed(s.seed, index, k) for k in range(s.samples)]}
    if mode == "degrade":
        seeds.update(operator=image_seed(s.seed, index, "operator"), noise=image_seed(s.seed, index, "noise"))
    return seeds


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON values; tensors and arrays become their shape and SHA-256."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return {"array": list(obj.shape), "dtype": str(obj.dtype), "sha256": sha256_bytes(np.ascontiguousarray(obj).tobytes())}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    return repr(obj)


def maybe_sha(path: Path | None, sha: Callable[[Path], str]) -> str | None:
    return None if path is None else sha(path)


def outputs_intact(out: Path, rec: Mapping[str, Any], sha: Callable[[Path], str]) -> bool:
    try:
        return all(sha(out / o["path"]) == o["sha256"] for o in rec.get("outputs", {}).values()) and bool(rec.get("outputs"))
    except OSError:
        return False
