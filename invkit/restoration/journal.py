"""What an output folder of ``invkit restore`` holds besides the images: the journals (one JSON
line per finished file, flushed and fsynced), ``manifest.json`` (rewritten atomically from the
journals), the check that refuses to mix the outputs of different settings, and the
:class:`RestoreReport` of a run.

Part of the files layer (:mod:`invkit.restoration.files`, whose module doc describes resume).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs

from ..errors import ConfigError
from ..io import write_json_atomic
from .inputs import Source

__all__ = [
    "FORMAT",
    "MANIFEST",
    "MANIFEST_EVERY",
    "MANIFEST_SECONDS",
    "Journal",
    "RestoreReport",
    "journal_path",
    "journals",
    "read_journal",
    "read_manifest",
    "refuse_other_settings",
    "remove_stale_temporaries",
    "write_manifest",
]

MANIFEST = "manifest.json"
FORMAT = "invkit-restore/1"
#: manifest.json is rewritten from the journal after this many completed files (and at the end)
MANIFEST_EVERY = 16
#: ... but at most once in this many seconds (each rewrite is O(number of files))
MANIFEST_SECONDS = 10.0


def journal_path(out: Path, rank: int = 0) -> Path:
    """Rank 0's journal is ``manifest.journal.jsonl``; rank r's ``manifest.journal.r<r>.jsonl``."""
    return out / ("manifest.journal.jsonl" if rank == 0 else f"manifest.journal.r{rank}.jsonl")


def journals(out: Path) -> list[Path]:
    return sorted(out.glob("manifest.journal*.jsonl"))


class Journal:
    """An append-only JSON-lines file: each record is flushed and fsynced before :meth:`append`
    returns, so a record that is there describes outputs that are complete on disk."""

    def __init__(self, path: Path):
        self.path = path
        self._f = open(path, "ab")
        # a kill mid-line leaves a torn last line: start on a fresh line so the next record parses
        if self._f.tell() and not _ends_with_newline(path):
            self._write(b"\n")

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._f.flush()
        os.fsync(self._f.fileno())

    def append(self, record: Mapping[str, Any]) -> None:
        self._write((json.dumps(record, default=str, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        self._f.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_journal(out: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The latest record per file key from every journal in ``out`` (lines that do not parse,
    such as a line torn by a kill, are ignored)."""
    records: dict[str, tuple[float, dict[str, Any]]] = {}
    for path in journals(Path(out)):
        with open(path, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(rec, dict) or "key" not in rec:
                    continue
                stamp = float(rec.get("finished", 0.0))
                if rec["key"] not in records or stamp >= records[rec["key"]][0]:
                    records[rec["key"]] = (stamp, rec)
    return {k: v for k, (_, v) in records.items()}


def read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


_TMP = re.compile(r"^\..+\.\d+\.tmp$")


def remove_stale_temporaries(out: Path) -> None:
    """Temporaries of :func:`invkit.io.write_atomic` left by a killed run (never complete files)."""
    for p in out.rglob(".*.tmp"):
        if p.is_file() and _TMP.match(p.name):
            p.unlink(missing_ok=True)


def write_manifest(
    out: Path, header: Mapping[str, Any], sources: Sequence[Source], records: Mapping[str, Any], *, complete: bool, finished: float | None = None
) -> dict[str, Any]:
    """``manifest.json`` from the header and the journal ``records``: one entry per input, in order."""
    files = []
    for s in sources:
        rec = records.get(s.key)
        if rec is None or rec.get("settings_sha256") != header["settings_sha256"]:
            files.append({"key": s.key, "input": str(s.path), "relative": str(s.relative), "index": s.index, "status": "pending"})
        else:
            files.append(rec)
    counts = {st: sum(1 for f in files if f["status"] == st) for st in ("ok", "error", "pending")}
    ok = [f for f in files if f["status"] == "ok"]
    summary: dict[str, Any] = {"files": len(files), **counts, "complete": complete and counts["pending"] == 0}
    if ok:
        summary["seconds"] = sum(f["seconds"] for f in ok)
        summary["nfe_per_file"] = sum(f["nfe"] for f in ok) / len(ok)
        summary["max_consistency"] = max(f["consistency"] for f in ok)
        if all("psnr" in f for f in ok):
            summary["psnr"] = sum(f["psnr"] for f in ok) / len(ok)
            summary["ssim"] = sum(f["ssim"] for f in ok) / len(ok)
    manifest = {**header, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished or time.time())), "summary": summary, "files": files}
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


def refuse_other_settings(out: Path, key: str, previous: Mapping[str, Any], manifest: Mapping[str, Any] | None, names: Mapping[str, Any]) -> None:
    """Refuse (without writing anything) to mix the outputs of different settings in ``out``."""
    keys = {r.get("settings_sha256") for r in previous.values()}
    if manifest is not None:
        keys.add(manifest.get("settings_sha256"))
    keys.discard(None)
    if keys - {key}:
        raise ConfigError(
            f"{str(out)!r} holds the outputs of a run with other settings (see its manifest.json); "
            "use another --out, or --overwrite to replace them"
        )
    if not keys and out.is_dir():
        clash = [n for n in names if (out / n).exists()]
        if clash:
            raise ConfigError(
                f"{str(out)!r} already holds {len(clash)} file(s) this run would write (e.g. {clash[0]}) and no invkit manifest; "
                "use another --out, or --overwrite to replace them"
            )


@attrs.define
class RestoreReport:
    """What :func:`restore_files` did: the manifest it wrote and the per-file records."""

    out: Path
    manifest: dict[str, Any]
    #: keys restored by this call, keys skipped (already done), keys that failed
    done: list[str]
    skipped: list[str]
    failed: list[str]

    @property
    def exit_status(self) -> int:
        """0 if every file is restored, 1 if some failed (the CLI's exit status)."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        """One paragraph for the terminal: counts, then one line per failed file."""
        lines = [f"restored {len(self.done)}, skipped {len(self.skipped)} (already done), failed {len(self.failed)}; manifest: {self.out / MANIFEST}"]
        files = {r["key"]: r for r in self.manifest.get("files", [])}
        for key in self.failed:
            lines.append(f"  failed: {files.get(key, {}).get('input', key)}: {files.get(key, {}).get('error', '?')}")
        return "\n".join(lines)
