"""Reports of an evaluation: the Markdown tables, ``results.json``, the images and the manifest.

:func:`write_outputs` writes every file atomically and ``manifest.json`` last (removing the old
manifest first), so a folder with a manifest is complete and every file it lists belongs to the
same run; files a previous manifest listed that this run does not write are removed.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs

from ..io import save_png, sha256_file, write_atomic, write_json_atomic, write_text_atomic
from .config import EvalResult, config_dict, run_settings, settings_hash
from .figures import grid_columns, image_grid
from .stats import paired_difference
from .sweep import NFESweep, sweep_summary, write_sweep
from .tasks import noise_text

__all__ = ["markdown_table", "paired_table", "results_dict", "write_outputs", "write_manifest", "read_manifest", "listed_files", "prune_empty", "MANIFEST"]

MANIFEST = "manifest.json"


def _fmt(value: Any, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(result: EvalResult, compare: Sequence[tuple[str, str]] = ()) -> str:
    """The results as a Markdown table laid out like SSD's Table 1 (method | PSNR | SSIM | FID | …).

    ``compare`` adds the :func:`paired_table` of those ``(a, b)`` method pairs.
    """
    cfg = result.config
    lpips_col = any("lpips" in a for a in result.aggregates.values())
    incep_col = any("fid_inception" in a for a in result.aggregates.values())
    head = ["method", "PSNR↑", "SSIM↑", "FID↓"] + (["LPIPS↓"] if lpips_col else []) + (["FID-Inception↓"] if incep_col else [])
    head += ["consistency ‖Ax̂−y‖", "NFE", "s/img"]
    lines = [
        f"Task `{result.task.name}` ({result.task.description}); noise: {noise_text(result.noise)}; "
        f"dataset `{cfg.dataset}` images {cfg.offset}..{cfg.offset + cfg.n - 1} (n = {cfg.n}); backbone `{cfg.backbone}`; "
        f"seed {cfg.seed}; batch {cfg.batch_size}; device {result.environment['device']}, {cfg.dtype}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for label, a in result.aggregates.items():
        cells = [label, _fmt(a["psnr"], 2), _fmt(a["ssim"], 4), _fmt(a.get("fid_fashion"), 2)]
        cells += [_fmt(a.get("lpips"), 3)] if lpips_col else []
        cells += [_fmt(a.get("fid_inception"), 2)] if incep_col else []
        nfe = a["nfe"]
        cells += [f"{a['consistency']:.2e}", str(nfe) if isinstance(nfe, int) else f"{nfe:.1f}", f"{a['seconds_per_image']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if result.fid_floor is not None:
        lines.append(
            f"FID is `fid_fashion` against the n ground-truth images. Reference: n training images against them give "
            f"{result.fid_floor:.2f} (the FID of an independent real sample of the same size; restorations, matched "
            f"to their ground truth, can come below it)."
        )
    lines.append("PSNR/SSIM on uint8-truncated images; NFE = network calls really made; s/img = batch time / batch size.")
    lines += [f"Note: {note}" for note in result.notes]
    if compare:
        lines += ["", "Paired per-image differences (same images, same measurements):", "", paired_table(result.rows, compare).rstrip("\n")]
    return "\n".join(lines) + "\n"


def paired_table(rows: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[str, str]], metrics: Sequence[str] = ("psnr", "ssim")) -> str:
    """Markdown table of :func:`paired_difference` for each ``(a, b)`` pair and metric."""
    lines = ["| a − b | metric | mean difference | 95% CI | a better on | n |", "|---|---|---|---|---|---|"]
    for a, b in pairs:
        for metric in metrics:
            r = paired_difference(rows, a, b, metric)
            digits = 2 if metric == "psnr" else 4
            lines.append(
                f"| {a} − {b} | {metric} | {r['mean']:+.{digits}f} | ±{r['ci95']:.{digits}f} | {100 * r['a_better']:.0f}% | {r['n']} |"
            )
    return "\n".join(lines) + "\n"


def results_dict(result: EvalResult) -> dict[str, Any]:
    """Everything of ``result`` that goes into ``results.json``."""
    t = result.task
    return {
        "format": "invkit-eval/1",
        "config": config_dict(result.config),
        "task": {"name": t.name, "operator": t.operator, "params": dict(t.params), "mask": t.mask, "description": t.description},
        "noise": {"text": noise_text(result.noise), "repr": repr(result.noise)},
        "methods": result.methods,
        "aggregates": result.aggregates,
        "fid_fashion_floor": result.fid_floor,
        "notes": result.notes,
        "environment": result.environment,
        "wall_seconds": result.wall_seconds,
        "rows": result.rows,
    }


def read_manifest(out: str | Path) -> dict[str, Any] | None:
    """``OUT/manifest.json`` parsed, or ``None`` when missing or unreadable."""
    try:
        data = json.loads((Path(out) / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def listed_files(out: Path, manifest: Mapping[str, Any] | None) -> list[Path]:
    """The files a manifest lists that lie inside ``out`` (nothing outside it is ever removed)."""
    paths = []
    for entry in (manifest or {}).get("files", []):
        rel = Path(str(entry.get("path", ""))) if isinstance(entry, Mapping) else None
        if rel is not None and rel.parts and not rel.is_absolute() and ".." not in rel.parts:
            paths.append(out / rel)
    return paths


def prune_empty(folder: Path, out: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``out`` while they are empty."""
    folder, out = folder.resolve(), out.resolve()
    while folder != out and out in folder.parents and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _save_images(names: Sequence[str], images: Mapping[str, Any], root: Path) -> list[Path]:
    paths = []
    for label, u8 in images.items():
        folder = root / label.replace("/", "_").replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for name, img in zip(names, u8):
            paths.append(save_png(img, folder / f"{Path(name).stem}.png"))
    return paths


def write_manifest(out: str | Path, files: Sequence[Path], *, settings: Mapping[str, Any], environment: Mapping[str, Any], command: Any = None) -> Path:
    """Write ``OUT/manifest.json``: the command, the settings and their hash, the environment, and
    every file of ``files`` with its size and SHA-256 (atomically)."""
    out = Path(out)
    manifest = {
        "format": "invkit-eval-manifest/1",
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings_sha256": settings_hash(settings),
        "config": settings["config"],
        "environment": dict(environment),
        "files": [{"path": p.relative_to(out).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files],
    }
    return write_json_atomic(out / MANIFEST, manifest)


def write_outputs(
    result: EvalResult,
    out: str | Path,
    *,
    save_images: bool = False,
    sweep: tuple[Sequence[str], Sequence[int]] | None = None,
    compare: Sequence[tuple[str, str]] = (),
    command: Any = None,
    extra_files: Sequence[Path] = (),
    settings: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``results.json``, ``table.md``, ``grid.png`` and last ``manifest.json`` to ``out``.

    Args:
        result: what :func:`evaluate` measured.
        out: the folder (created if missing).
        save_images: also write every quantised restoration as ``images/<method>/<name>.png``
            (and the ground truth under ``images/gt``), for external metric tools.
        sweep: deprecated; the sweep is ``result.config.sweep`` (its files come with it).
        compare: method pairs whose paired differences go under ``table.md``.
        command: recorded in the manifest.
        extra_files: files already in ``out`` that belong to this run (``rows.jsonl``), listed in
            the manifest too.
        settings: the run's settings for the manifest (default: :func:`run_settings` of the
            result's configuration and these output choices).

    Returns:
        The files written, the manifest last.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweep_cfg = result.config.sweep
    if sweep is not None:
        warnings.warn("write_outputs(sweep=...) is deprecated; give EvalConfig(sweep=NFESweep(families, nfes))", DeprecationWarning, stacklevel=2)
        sweep_cfg = attrs.evolve(result.config, sweep=NFESweep(*sweep)).sweep  # its methods must have been evaluated
    previous = listed_files(out, read_manifest(out))
    # the old manifest goes first: until the new one is written the folder claims nothing
    (out / MANIFEST).unlink(missing_ok=True)
    written = [Path(p) for p in extra_files]
    written.append(write_json_atomic(out / "results.json", results_dict(result)))
    written.append(write_text_atomic(out / "table.md", markdown_table(result, compare)))
    if result.examples["index"].numel():
        cols, captions = grid_columns(result)
        grid = image_grid(cols, captions=captions)
        written.append(write_atomic(out / "grid.png", lambda tmp: grid.save(tmp, format="PNG")))
    if save_images:
        written += _save_images(result.names, {"gt": result.gt_u8, **result.outputs_u8}, out / "images")
    if sweep_cfg is not None:
        cfg = result.config
        written += write_sweep(
            out, sweep_summary(result.aggregates, sweep_cfg), nfes=sweep_cfg.nfes, fid_floor=result.fid_floor,
            n=cfg.n, notes=result.notes, title=f"FID vs NFE: task {result.task.name}, {cfg.dataset}, n = {cfg.n}",
        )  # fmt: skip
    keep = {p.resolve() for p in written}
    for p in previous:  # files of the previous run that this one did not rewrite
        if p.resolve() not in keep and p.is_file():
            p.unlink()
            prune_empty(p.parent, out)
    if settings is None:
        settings = run_settings(result.config, save_images=save_images, compare=compare)
    written.append(write_manifest(out, written, settings=settings, environment=result.environment, command=command))
    return written
