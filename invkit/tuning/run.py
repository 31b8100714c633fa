r"""A tuning run: sample configurations, successive halving on training images, a journal, a preset.

Every restored chunk of images of one trial is appended to ``OUT/trials.jsonl`` (flushed and
fsync'ed) under a header line holding the settings and their hash, so a killed run resumes where
it stopped and a run with other settings is refused on the same folder (unless ``overwrite``).
``OUT/tune.json`` (written atomically at the end) holds the settings, every trial, the rungs,
the winner, the command and the environment; the preset file gets the winner as a named preset.

**FID cap** (``fid_cap``, ``--fid-cap RECIPE``). Tuning for PSNR alone buys distortion with
perception (Blau & Michaeli, CVPR 2018): the PSNR-best configurations are smooth and their FID
is far worse than the untuned recipe's. With a cap, a reference recipe (e.g. ``ddnm-30``)
restores the same rung images, and a configuration ranks by its objective only while its
``fid_fashion`` on the rung (against those images' ground truth) is no worse than the
reference's; configurations over the cap rank after every one under it, by how far over they
are. A trial's score is then its objective, or ``OVER_CAP − (FID − cap)`` over the cap. The
per-image 128-d classifier features are journalled with the rows, so a resumed run and every
later rung reuse them.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import attrs
import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError, InvalidInputError
from ..io import environment, write_json_atomic, write_text_atomic
from ..validators import nonneg_int, one_of, positive_int
from .data import check_training_dataset, load_training_images
from .halving import rung_plan, successive_halving
from .space import SearchSpace, method_string

__all__ = ["OBJECTIVES", "OVER_CAP", "FID_CAP_MIN_IMAGES", "REFERENCE_TRIAL", "TuneConfig", "tune", "preset_entry", "write_presets", "JOURNAL", "RESULT"]

#: objectives on per-image rows (higher is better). FID is not offered: a trial's rung holds tens
#: of images, far too few for a Fréchet distance to rank configurations.
OBJECTIVES = ("psnr", "ssim")
#: the score of a configuration whose FID is just over the cap (every objective value ranks above)
OVER_CAP = -1.0e6
#: the smallest rung a FID cap is taken on: a Fréchet distance of 128-d features from fewer
#: images is dominated by its small-sample bias and noise
FID_CAP_MIN_IMAGES = 32
#: the journal's trial number of the FID cap's reference recipe
REFERENCE_TRIAL = -1
JOURNAL = "trials.jsonl"
RESULT = "tune.json"
PRESETS_FORMAT = "invkit-presets/1"


def _rungs(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class TuneConfig:
    """Every knob of a tuning run (recorded verbatim in ``tune.json``)."""

    nfe: int
    task: str = "sr4"
    family: str = attrs.field(default="ssd", validator=one_of(("ssd", "ssd-2m")))
    dataset: str = "fashion-train"
    declared_training: bool = False
    configs: int = attrs.field(default=24, validator=positive_int())
    rungs: tuple[int, ...] = attrs.field(default=(8, 24, 64), converter=_rungs)
    keep: int = 3
    objective: str = attrs.field(default="psnr", validator=one_of(OBJECTIVES))
    fid_cap: str | None = None
    seed: int = attrs.field(default=0, validator=nonneg_int())
    backbone: str = "fashion32"
    checkpoint: str | None = None
    backbone_options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    noise_sigma: float | None = None
    batch_size: int = attrs.field(default=16, validator=positive_int())
    device: str = "cpu"
    dtype: str = "float32"
    space: SearchSpace = attrs.field(default=attrs.Factory(lambda self: SearchSpace(self.nfe), takes_self=True))

    def __attrs_post_init__(self) -> None:
        check_training_dataset(self.dataset, declared_training=self.declared_training)
        rung_plan(self.configs, self.rungs, self.keep)  # raises on a bad plan
        if self.space.nfe != self.nfe:
            raise ConfigError(f"the search space is for {self.space.nfe} NFE, the run for {self.nfe}")
        if self.fid_cap is not None:
            if not str(self.fid_cap).strip():
                raise ConfigError("--fid-cap needs a recipe, e.g. ddnm-30")
            if self.rungs[0] < FID_CAP_MIN_IMAGES:
                raise ConfigError(
                    f"--fid-cap compares Fréchet distances on each rung's images: the first rung needs at least "
                    f"{FID_CAP_MIN_IMAGES} images, got {self.rungs[0]} (e.g. --rungs 64 128 256)"
                )
        if self.configs > self.space.size():
            raise ConfigError(f"--configs {self.configs} is more than the {self.space.size()} configurations the space holds")

    def settings(self) -> dict[str, Any]:
        d = {k: v for k, v in attrs.asdict(self, recurse=False).items() if k != "space"}
        d["rungs"], d["backbone_options"], d["space"] = list(self.rungs), dict(self.backbone_options), self.space.as_dict()
        if d["fid_cap"] is None:
            del d["fid_cap"]  # the settings (and journal hash) of runs from before the cap existed
        return d


def _hash(settings: Mapping[str, Any]) -> str:
    from ..io import sha256_bytes

    return sha256_bytes(json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))


class _Journal:
    """``trials.jsonl``: a header (settings, hash), then one line per restored chunk."""

    def __init__(self, out: Path, settings: Mapping[str, Any], *, overwrite: bool):
        self.path = out / JOURNAL
        self.records: list[dict[str, Any]] = []
        digest = _hash(settings)
        if self.path.exists():
            lines = self.path.read_text("utf-8").splitlines()
            header = self.check(out, settings, overwrite=overwrite)
            if header.get("hash") != digest:
                self.path.unlink()
                (out / RESULT).unlink(missing_ok=True)
            else:
                good = lines[:1]
                for line in lines[1:]:
                    try:
                        self.records.append(json.loads(line))
                    except ValueError:
                        break  # a line cut by a kill: that chunk is restored again
                    good.append(line)
                if len(good) != len(lines):  # drop the torn line so appends start on a line of their own
                    write_text_atomic(self.path, "".join(line + "\n" for line in good))
        out.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        self._fh = open(self.path, "a", encoding="utf-8")
        if fresh:
            self._write({"settings": dict(settings), "hash": digest})

    @staticmethod
    def check(out: Path, settings: Mapping[str, Any], *, overwrite: bool) -> dict[str, Any]:
        """The header of ``out``'s journal ({} if none); refuses other settings without ``overwrite``."""
        path = out / JOURNAL
        lines = path.read_text("utf-8").splitlines()[:1] if path.is_file() else []
        try:
            header = json.loads(lines[0]) if lines else {}
        except ValueError:
            header = {}  # the header itself was cut by a kill: nothing was restored yet
        if header and header.get("hash") != _hash(settings) and not overwrite:
            raise ConfigError(
                f"{out} holds a tuning run with other settings; choose another --out, rerun with the same "
                "settings to resume, or add --overwrite to replace it"
            )
        return header

    def _write(self, record: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(record, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, record: dict[str, Any]) -> None:
        self._write(record)
        self.records.append(record)

    def close(self) -> None:
        self._fh.close()


def tune(
    cfg: TuneConfig,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = False,
    model: Any = None,
    command: Mapping[str, Any] | None = None,
    preset_name: str | None = None,
    restore: Callable[..., list[dict[str, Any]]] | None = None,
    truth_features: Any = None,
) -> dict[str, Any]:
    """Run the search ``cfg``, journalled in ``out``; the ``tune.json`` document.

    Args:
        cfg: the configuration.
        out: results folder (``trials.jsonl``, ``tune.json``).
        overwrite: replace a run with other settings in ``out``.
        progress: a progress bar over trial evaluations.
        model: the backbone (default: built from ``cfg``).
        command: the command line, recorded.
        preset_name: the winner's preset name (default ``{family}-{nfe}-tuned``).
        restore: ``restore(method, images, names, offset) -> rows`` replacing the evaluation
            (tests); rows need ``index``, ``psnr``, ``ssim``, ``nfe`` (and ``features``, the
            restoration's classifier features, with a FID cap).
        truth_features: with ``restore`` and a FID cap, the ground truth's features ``(N, D)``.

    Raises:
        ConfigError: other settings in ``out`` without ``overwrite``; a configuration whose real
            number of network calls is not ``cfg.nfe``; a FID cap on images the Fashion-MNIST
            classifier cannot read (not 1×32×32).
    """
    from .. import evaluation as ev

    t_start = time.perf_counter()
    out = ev.check_output_folder(out)
    settings = cfg.settings()
    task = ev.get_task(cfg.task)
    configs = cfg.space.sample(cfg.configs, cfg.seed)
    methods = [method_string(cfg.family, c) for c in configs]
    for m in methods + ([cfg.fid_cap] if cfg.fid_cap else []):  # a bad option fails now, not after an hour
        ev.parse_method(m).build(task, ev.make_noise(task, cfg.noise_sigma, None, None))
    _Journal.check(out, settings, overwrite=overwrite)  # before loading anything
    n_max = max(cfg.rungs[: len(rung_plan(cfg.configs, cfg.rungs, cfg.keep))])
    if restore is None:
        if model is None:
            model = ev.load_backbone(cfg.backbone, checkpoint=cfg.checkpoint, device=cfg.device, dtype=cfg.dtype, options=cfg.backbone_options)
        images, names = load_training_images(cfg.dataset, n_max, declared_training=cfg.declared_training,
                                             channels=getattr(model, "channels", None), size=getattr(model, "image_size", None))  # fmt: skip
        features = _feature_fn(images) if cfg.fid_cap else None
        if features is not None:
            truth_features = features(ev.ground_truth_uint8(images))

        def restore(method: str, x: Any, nm: Sequence[str], offset: int) -> list[dict[str, Any]]:
            ecfg = ev.EvalConfig(task=cfg.task, methods=(method,), backbone=cfg.backbone, checkpoint=cfg.checkpoint,
                                 backbone_options=cfg.backbone_options, dataset=cfg.dataset, n=x.shape[0], offset=offset,
                                 seed=cfg.seed, batch_size=cfg.batch_size, device=cfg.device, dtype=cfg.dtype,
                                 noise_sigma=cfg.noise_sigma, grid=0)  # fmt: skip
            res = ev.evaluate(ecfg, model=model, images=x, names=nm, shard=(0, 1))
            if features is not None:
                for r, f in zip(res.rows, features(res.outputs_u8[method])):
                    r["features"] = [round(float(v), 6) for v in f]
            return res.rows
    else:
        images, names = None, [f"image-{i:05d}" for i in range(n_max)]

    if cfg.fid_cap and (truth_features is None or len(truth_features) < n_max):
        raise ConfigError(f"a FID cap needs the ground truth's features of the {n_max} rung images")
    truth = np.asarray(truth_features, dtype=np.float64) if cfg.fid_cap else None  # converted once, sliced per rung
    journal = _Journal(out, settings, overwrite=overwrite)
    rows: dict[int, dict[int, dict[str, Any]]] = {t: {} for t in [*range(len(configs)), REFERENCE_TRIAL]}
    for rec in journal.records:
        for r in rec["rows"]:
            rows[rec["trial"]][r["index"]] = r
    plan = rung_plan(cfg.configs, cfg.rungs, cfg.keep)
    bar = tqdm(total=sum(plan), unit="trial", desc=f"tune {cfg.family} {cfg.task} {cfg.nfe} NFE", disable=not progress, dynamic_ncols=True)

    fields = ("index", "psnr", "ssim", "nfe", "seconds") + (("features",) if cfg.fid_cap else ())

    def restored(trial: int, n: int) -> dict[int, dict[str, Any]]:
        """``trial``'s rows of images 0..n−1, restoring (and journalling) the missing ones."""
        have = rows[trial]
        lo = 0
        while lo in have and lo < n:
            lo += 1
        if lo < n:
            tic = time.perf_counter()
            method = cfg.fid_cap if trial == REFERENCE_TRIAL else methods[trial]
            chunk = restore(method, None if images is None else images[lo:n], names[lo:n], lo)
            kept = [{k: r[k] for k in fields if k in r} for r in chunk]
            wrong = sorted({r["nfe"] for r in kept} - {cfg.nfe})
            if wrong and trial != REFERENCE_TRIAL:
                raise ConfigError(f"trial {trial} ({methods[trial]}) made {wrong[0]} network calls, not the budget {cfg.nfe}")
            config = None if trial == REFERENCE_TRIAL else configs[trial]
            journal.append({"trial": trial, "config": config, "lo": lo, "hi": n, "rows": kept,
                            "seconds": time.perf_counter() - tic})  # fmt: skip
            have.update({r["index"]: r for r in kept})
        return have

    fids: dict[int, dict[str, float]] = {}  # rung images -> {"cap": ..., trial: FID}

    def fid(trial: int, n: int) -> float:
        from ..metrics import fid_from_features

        have = restored(trial, n)
        feats = np.asarray([have[i]["features"] for i in range(n)], dtype=np.float64)
        return float(fid_from_features(feats, truth[:n]))

    def score(trial: int, n: int) -> float:
        have = restored(trial, n)
        value = float(np.mean([have[i][cfg.objective] for i in range(n)]))
        bar.update(1)
        if not cfg.fid_cap:
            return value
        at = fids.setdefault(n, {})
        if "cap" not in at:
            at["cap"] = fid(REFERENCE_TRIAL, n)
        at[str(trial)] = f = fid(trial, n)
        return value if f <= at["cap"] else OVER_CAP - (f - at["cap"])

    try:
        rungs, winner = successive_halving(list(range(len(configs))), cfg.rungs, score, keep=cfg.keep)
    finally:
        bar.close()
        journal.close()
    wall = time.perf_counter() - t_start
    # restoring time of every chunk, this session's and those of the sessions a resume continued
    compute = float(sum(rec.get("seconds", 0.0) for rec in journal.records))
    trials = []
    for t, c in enumerate(configs):
        have = rows[t]
        n = len(have)
        trials.append({"trial": t, "config": c, "method": methods[t], "images": n,
                       "psnr": float(np.mean([r["psnr"] for r in have.values()])) if n else None,
                       "ssim": float(np.mean([r["ssim"] for r in have.values()])) if n else None})  # fmt: skip
    if cfg.fid_cap:
        for r in rungs:
            r["fid"] = fids.get(r["images"], {})
    name = preset_name or f"{cfg.family}-{cfg.nfe}-tuned"
    doc = {
        "settings": settings,
        "command": dict(command or {}),
        "trials": trials,
        "rungs": rungs,
        "winner": {**trials[winner], "score": rungs[-1]["scores"][str(winner)], "score_images": rungs[-1]["images"],
                   **_cap_summary(rungs[-1], winner)},  # fmt: skip
        "preset": {name: preset_entry(cfg, configs[winner], rungs, wall, command, compute)},
        "wall_seconds": wall,
        "restore_seconds": compute,
        "environment": environment(cfg.device, model),
    }
    write_json_atomic(out / RESULT, doc)
    return doc


def _cap_summary(rung: Mapping[str, Any], winner: int) -> dict[str, Any]:
    """The winner's FID, the cap and whether it is under it (empty without a cap)."""
    at = rung.get("fid")
    if not at:
        return {}
    return {"fid_fashion": at[str(winner)], "cap_fid_fashion": at["cap"], "under_cap": at[str(winner)] <= at["cap"]}


def _feature_fn(images: Any) -> Callable[[Any], np.ndarray]:
    """uint8 images -> their Fashion-MNIST classifier features (the FID cap's), checked now.

    Raises:
        ConfigError: images the classifier cannot read (it takes 1×32×32).
    """
    from .. import metrics
    from ..data import to_unit_range

    if tuple(images.shape[1:]) != (1, 32, 32):
        raise ConfigError(
            f"--fid-cap measures fid_fashion, which needs 1×32×32 (Fashion-MNIST-like) images; these are "
            f"{'×'.join(map(str, images.shape[1:]))}"
        )
    net = metrics.load_fashion_classifier()

    def features(u8: Any) -> np.ndarray:
        return metrics.fashion_features(to_unit_range(u8), net).numpy()

    return features


def preset_entry(cfg: TuneConfig, config: Mapping[str, Any], rungs: Sequence[Mapping[str, Any]], wall: float,
                 command: Mapping[str, Any] | None, restore_seconds: float | None = None) -> dict[str, Any]:  # fmt: skip
    """The presets-file entry of a winning ``config`` (see ``invkit_recipes.tuned``).

    Args:
        cfg: the run's configuration.
        config: the winner's overrides.
        rungs: the rungs of :func:`successive_halving`.
        wall: this session's wall time (s).
        command: the command line.
        restore_seconds: restoring time of all sessions (a resumed run's wall time is only its own).
    """
    task = _preset_task(cfg.task)
    n = rungs[-1]["images"]
    c = dict(config)
    found_by = {
        "tool": "invkit tune", "command": dict(command or {}), "task": cfg.task, "nfe": cfg.nfe, "family": cfg.family,
        "dataset": cfg.dataset, "training_indices": [0, int(max(r["images"] for r in rungs))],
        "configs": cfg.configs, "rungs": [r["images"] for r in rungs], "scored": [len(r["scores"]) for r in rungs],
        "keep": cfg.keep, "objective": cfg.objective, "fid_cap": cfg.fid_cap, "seed": cfg.seed, "backbone": cfg.backbone,
        "noise_sigma": cfg.noise_sigma, "training_score": rungs[-1]["scores"][str(rungs[-1]["kept"][0])],
        **_cap_summary(rungs[-1], rungs[-1]["kept"][0]),
        "wall_seconds": round(wall, 1), "restore_seconds": None if restore_seconds is None else round(restore_seconds, 1),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
    }  # fmt: skip
    cap = f" with fid_fashion at most {cfg.fid_cap}'s" if cfg.fid_cap else ""
    text = (f"{cfg.family} tuned by invkit tune for {cfg.task} at {cfg.nfe} NFE on {cfg.dataset} images 0..{n - 1} "
            f"({cfg.configs} configs, successive halving over {found_by['rungs']} images, mean {cfg.objective}{cap}, "
            f"seed {cfg.seed}): "
            f"F={c['inversion_steps']} B={c['generation_steps']} t0={c['t0']} inversion_eta={c['inversion_eta']} "
            f"eta={c['eta']} spacing={c['spacing']}")  # fmt: skip
    return {"base": cfg.family, "task": cfg.task, "preset_task": task, "nfe": cfg.nfe, "overrides": c,
            "description": text, "found_by": found_by}  # fmt: skip


def _preset_task(task: str) -> str:
    from ..evaluation import get_task

    engine = get_task(task).engine_task
    if engine is None:
        raise ConfigError(f"task {task!r} has no recipe preset task; tune a named task")
    return engine


def write_presets(path: str | os.PathLike, presets: Mapping[str, Mapping[str, Any]]) -> Path:
    """Add ``presets`` to the presets file ``path`` (created if missing; an entry of the same name
    is replaced), atomically.

    Raises:
        InvalidInputError: ``path`` exists and is not a presets file.
    """
    path = Path(path)
    doc: dict[str, Any] = {"format": PRESETS_FORMAT, "presets": {}}
    if path.exists():
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"--write-preset {path} exists and is not readable JSON ({exc}); choose another file") from None
        if not isinstance(doc, dict) or doc.get("format") != PRESETS_FORMAT or not isinstance(doc.get("presets"), dict):
            raise InvalidInputError(f"--write-preset {path} exists and is not an {PRESETS_FORMAT!r} file; choose another file")
    doc["presets"].update({k: dict(v) for k, v in presets.items()})
    return write_json_atomic(path, doc)
