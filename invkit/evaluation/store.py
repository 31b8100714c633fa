"""The results folder of ``invkit eval``: checked before any work, journalled, resumable.

While an evaluation runs, every finished batch goes to the folder in two steps: its uint8
restorations to ``cache/batch-<start>.npz`` (atomically: FID needs every image, and a resumed run
must not restore them again), then its per-image rows appended to ``rows.jsonl`` and flushed to
disk (``fsync``). The journal's first line holds the run's settings and their SHA-256
(:func:`~invkit.evaluation.config.settings_hash`). A killed run is resumed by reading the
journal's complete lines (a torn last line is dropped) and keeping the batches whose rows and
cache are both complete; at most the batch in flight is restored again, and per-image seeds make
it come out the same.

A folder never mixes two runs: reusing it with other settings needs ``overwrite``, which first
removes the old manifest (the folder then claims nothing), then every file of the old run, the
journal last. The final files are written by :func:`~invkit.evaluation.reports.write_outputs`,
the manifest last; the cache is removed after it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError
from ..io import check_output_dir, write_atomic, write_text_atomic
from ..io import check_output_file as io_check_output_file
from .config import EvalConfig, EvalResult, settings_hash
from .methods import parse_method
from .reports import MANIFEST, listed_files, prune_empty, read_manifest
from .restore import Batch

__all__ = ["JOURNAL", "CACHE", "OUTPUT_NAMES", "check_output_folder", "check_output_file", "RunFolder", "read_journal"]

JOURNAL = "rows.jsonl"
CACHE = "cache"
#: the files an evaluation writes besides the journal and the manifest
OUTPUT_NAMES = ("results.json", "table.md", "grid.png", "nfe_sweep.json", "nfe_sweep.md", "fid_vs_nfe.png")
JOURNAL_FORMAT = "invkit-eval-rows/1"


def check_output_folder(out: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work and without creating it, that the folder ``out`` can be written
    (:func:`invkit.io.check_output_dir`)."""
    return check_output_dir(out, what)


def check_output_file(path: str | os.PathLike, what: str = "--out", suffixes: Sequence[str] = (".png",)) -> Path:
    """Check, before any work, that the file ``path`` can be written (its folder may be created;
    :func:`invkit.io.check_output_file`)."""
    if Path(path).is_dir():
        raise ConfigError(f"{what} {path} is a folder; give a file name such as {Path(path) / 'demo.png'}")
    return io_check_output_file(path, what, suffixes)


def read_journal(path: str | os.PathLike) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The header and the complete row lines of a ``rows.jsonl`` (a torn last line is dropped)."""
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None, []
    lines = raw.split(b"\n")
    try:
        header = json.loads(lines[0])
    except ValueError:
        return None, []
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # killed while writing: only the last line can be torn
    return (header if isinstance(header, dict) else None), rows


def _journal_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, default=str) + "\n"


class RunFolder:
    """The folder of one evaluation run (see the module doc).

    Args:
        out: the folder.
        settings: :func:`~invkit.evaluation.config.run_settings` of the run.
    """

    def __init__(self, out: str | os.PathLike, settings: Mapping[str, Any]):
        self.out = Path(out)
        self.settings = dict(settings)
        self.hash = settings_hash(self.settings)
        self.labels = [parse_method(m).label for m in self.settings["config"]["methods"]]

    @property
    def journal(self) -> Path:
        return self.out / JOURNAL

    @property
    def cache(self) -> Path:
        return self.out / CACHE

    def _previous(self) -> tuple[bool, str | None, dict[str, Any] | None, dict[str, Any] | None]:
        """(a previous run is there, its settings hash, its manifest, its journal header)."""
        manifest = read_manifest(self.out)
        header, _ = read_journal(self.journal)
        present = (
            manifest is not None or self.journal.exists() or self.cache.exists()
            or any((self.out / n).exists() for n in OUTPUT_NAMES)
        )  # fmt: skip
        h = (manifest or {}).get("settings_sha256") or (header or {}).get("settings_sha256")
        return present, h, manifest, header

    def is_complete(self) -> bool:
        """A manifest of these settings whose every file is there with its size."""
        manifest = read_manifest(self.out)
        if manifest is None or manifest.get("settings_sha256") != self.hash:
            return False
        entries = manifest.get("files", [])
        paths = listed_files(self.out, manifest)
        return len(paths) == len(entries) and all(
            p.is_file() and p.stat().st_size == e.get("bytes") for p, e in zip(paths, entries)
        )

    def open(self, *, resume: bool = False, overwrite: bool = False) -> dict[int, Batch] | None:
        """Make the folder ready for this run; return the finished batches to keep.

        Args:
            resume: continue a run of the same settings (the batches it finished are returned).
            overwrite: replace a run of other settings.

        Returns:
            Batches by first position (empty for a fresh start), or ``None`` when ``resume`` finds
            the run already complete (nothing to do).

        Raises:
            ConfigError: both flags, or the folder holds a run of other settings and not
                ``overwrite``.
        """
        if resume and overwrite:
            raise ConfigError("--resume continues the run in --out and --overwrite replaces it: give one of them")
        present, previous_hash, manifest, header = self._previous()
        if present and previous_hash != self.hash and not overwrite:
            raise ConfigError(
                f"--out {self.out} holds an evaluation with other settings (or an unreadable one); "
                "pass --overwrite to replace it, or choose another --out"
            )
        if present and resume and previous_hash == self.hash:
            self._remove_temporaries(self.labels)
            if self.is_complete():
                shutil.rmtree(self.cache, ignore_errors=True)
                return None
            return self._load_done(header)
        if present:
            self.clear(manifest, header)
        self.out.mkdir(parents=True, exist_ok=True)
        header = {"format": JOURNAL_FORMAT, "settings_sha256": self.hash, "settings": self.settings}
        write_text_atomic(self.journal, _journal_line(header))
        return {}

    def clear(self, manifest: Mapping[str, Any] | None = None, header: Mapping[str, Any] | None = None) -> None:
        """Remove every file of the previous run: its manifest first, its journal last."""
        (self.out / MANIFEST).unlink(missing_ok=True)
        for p in listed_files(self.out, manifest):
            if p.is_file():
                p.unlink()
                prune_empty(p.parent, self.out)
        for name in OUTPUT_NAMES:
            (self.out / name).unlink(missing_ok=True)
        # the restorations of a run killed while writing them are in no manifest: its methods name them
        methods = ((header or {}).get("settings") or {}).get("config", {}).get("methods", [])
        labels = [parse_method(m).label for m in methods]
        self._remove_temporaries(labels)
        for folder in self._image_folders(labels):
            if folder.is_dir():
                shutil.rmtree(folder)
        prune_empty(self.out / "images", self.out)
        shutil.rmtree(self.cache, ignore_errors=True)
        self.journal.unlink(missing_ok=True)

    def _image_folders(self, labels: Sequence[str]) -> list[Path]:
        return [self.out / "images" / label.replace("/", "_").replace(":", "_") for label in ["gt", *labels]]

    def _remove_temporaries(self, labels: Sequence[str]) -> None:
        """The temporaries of atomic writes that were killed (``.<name>.<pid>.tmp``)."""
        for name in (*OUTPUT_NAMES, MANIFEST, JOURNAL):
            for tmp in self.out.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
        for folder in self._image_folders(labels):
            for tmp in folder.glob(".*.png.*.tmp") if folder.is_dir() else ():
                tmp.unlink(missing_ok=True)

    def _batch_file(self, start: int) -> Path:
        return self.cache / f"batch-{start:07d}.npz"

    def _load_done(self, header: Mapping[str, Any] | None) -> dict[int, Batch]:
        """The complete batches of the journal and cache; the journal rewritten to hold just them."""
        _, rows = read_journal(self.journal)
        by_batch: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            if isinstance(row, dict) and isinstance(row.get("batch"), int):
                by_batch.setdefault(row["batch"], []).append(row)
        done: dict[int, Batch] = {}
        for start, batch_rows in sorted(by_batch.items()):
            try:
                with np.load(self._batch_file(start)) as z:
                    indices = [int(i) for i in z["index"]]
                    outputs = {label: z[f"out_{k}"] for k, label in enumerate(self.labels)}
            except (OSError, KeyError, ValueError):
                continue  # killed before its cache was complete: restore it again
            cleaned = [{k: v for k, v in r.items() if k != "batch"} for r in batch_rows]
            if {(r["method"], r["index"]) for r in cleaned} != {(m, i) for m in self.labels for i in indices} or len(cleaned) != len(self.labels) * len(indices):
                continue  # killed while appending its rows
            done[start] = Batch(start, indices, cleaned, outputs)
        text = _journal_line(dict(header or {})) + "".join(_journal_line({**r, "batch": s}) for s, b in done.items() for r in b.rows)
        write_text_atomic(self.journal, text)
        return done

    def append(self, batch: Batch) -> None:
        """Journal a finished batch: its images to the cache (atomically), then its rows (fsync)."""
        self.cache.mkdir(exist_ok=True)
        arrays = {"index": np.asarray(batch.indices, dtype=np.int64)}
        arrays.update({f"out_{k}": np.asarray(batch.outputs[label]) for k, label in enumerate(self.labels)})

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        write_atomic(self._batch_file(batch.start), save)
        with open(self.journal, "a", encoding="utf-8") as f:
            f.write("".join(_journal_line({**r, "batch": batch.start}) for r in batch.rows))
            f.flush()
            os.fsync(f.fileno())

    def finish(self, result: EvalResult, cfg: EvalConfig | None = None) -> Path:
        """Rewrite the journal in the result's order (the same file however often the run was
        interrupted) and return it, to be listed in the manifest."""
        cfg = cfg or result.config
        header = {"format": JOURNAL_FORMAT, "settings_sha256": self.hash, "settings": self.settings}

        def batch_of(index: int) -> int:
            p = index - cfg.offset
            return p - p % cfg.batch_size

        text = _journal_line(header) + "".join(_journal_line({**r, "batch": batch_of(r["index"])}) for r in result.rows)
        return write_text_atomic(self.journal, text)

    def close(self) -> None:
        """Remove the cache (after the manifest: the run is complete)."""
        shutil.rmtree(self.cache, ignore_errors=True)
