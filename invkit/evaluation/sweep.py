r"""The FID-vs-NFE sweep: each family at each network-call budget, a table and a plot.

The sweep is part of the evaluation's configuration (:attr:`EvalConfig.sweep`): its methods are
evaluated like any other, and :func:`write_sweep` only lays out what was measured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import attrs

from ..errors import ConfigError
from ..io import write_json_atomic, write_text_atomic
from . import extras
from .figures import plot_lines

__all__ = ["SWEEP_FAMILIES", "SWEEP_NFES", "NFESweep", "sweep_steps", "sweep_methods", "sweep_summary", "sweep_markdown", "write_sweep"]

SWEEP_FAMILIES = ("ssd", "ddnm", "ddrm")
SWEEP_NFES = (10, 20, 30, 50, 100)


def sweep_steps(family: str, nfe: int) -> dict[str, int]:
    r"""The step counts giving a family its nominal budget ``nfe``.

    SSD splits the budget as the paper's 30 = 5 + 25 and 100 = 15 + 85: ``F = max(2, ⌈0.15·nfe⌉)``
    inversion steps and ``B = nfe − F`` generation steps (it really calls the network F − 1 + B
    times); so do the SSD-based families (``ssd-inject``, ``ssd-2m``, any name starting
    ``ssd-``). Every other family (DDNM, DDRM, ...) takes ``generation_steps = nfe``.

    Raises:
        ConfigError: ``nfe`` is not an integer >= 2.
    """
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < 2:
        raise ConfigError(f"an NFE budget must be an integer >= 2, got {nfe!r}")
    if family == "ssd" or family.startswith("ssd-"):
        F = max(2, math.ceil(0.15 * nfe))
        return {"inversion_steps": F, "generation_steps": nfe - F}
    return {"generation_steps": nfe}


def sweep_methods(families: Sequence[str] = SWEEP_FAMILIES, nfes: Sequence[int] = SWEEP_NFES) -> list[str]:
    """Method strings (see :class:`~invkit.evaluation.Method`) of the sweep, family-major."""
    return [f"{fam}:" + ",".join(f"{k}={v}" for k, v in sweep_steps(fam, nfe).items()) for fam in families for nfe in nfes]


def _budgets(instance: Any, attribute: Any, value: tuple[int, ...]) -> None:
    if not value:
        raise ConfigError("an NFE sweep needs at least one budget")
    for nfe in value:
        sweep_steps("ssd", nfe)


def _families(instance: Any, attribute: Any, value: tuple[str, ...]) -> None:
    if not value:
        raise ConfigError("an NFE sweep needs at least one family")
    if len(set(value)) != len(value):
        raise ConfigError(f"an NFE sweep lists a family twice: {', '.join(value)}")


@attrs.frozen
class NFESweep:
    """The families and nominal budgets of an FID-vs-NFE sweep (the ``--nfe-sweep`` mode)."""

    families: tuple[str, ...] = attrs.field(default=SWEEP_FAMILIES, converter=tuple, validator=_families)
    nfes: tuple[int, ...] = attrs.field(default=SWEEP_NFES, converter=tuple, validator=_budgets)

    def methods(self) -> list[str]:
        """The sweep's method strings, family-major (``input`` not included)."""
        return sweep_methods(self.families, self.nfes)


def sweep_summary(aggregates: Mapping[str, Mapping[str, Any]], sweep: NFESweep) -> list[dict[str, Any]]:
    """One row per (family, nominal NFE) of the evaluated ``aggregates``: real NFE, FID, PSNR,
    SSIM, s/img."""
    out = []
    for fam in sweep.families:
        for nfe in sweep.nfes:
            a = aggregates[sweep_methods([fam], [nfe])[0]]
            out.append(
                {
                    "family": fam,
                    "nominal_nfe": nfe,
                    "steps": sweep_steps(fam, nfe),
                    "nfe": a["nfe"],
                    "fid_fashion": a.get("fid_fashion"),
                    "psnr": a["psnr"],
                    "ssim": a["ssim"],
                    "seconds_per_image": a["seconds_per_image"],
                }
            )
    return out


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def sweep_markdown(rows: Sequence[Mapping[str, Any]], *, fid_floor: float | None, n: int) -> str:
    """The sweep's rows as a Markdown table, with the FID floor of ``n`` images under it."""
    lines = ["| family | nominal NFE | steps | real NFE | FID↓ | PSNR↑ | SSIM↑ | s/img |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = ", ".join(f"{k}={v}" for k, v in r["steps"].items())
        lines.append(
            f"| {r['family']} | {r['nominal_nfe']} | {steps} | {r['nfe']} | {_fmt(r['fid_fashion'], 2)} | "
            f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds_per_image']:.3f} |"
        )
    if fid_floor is not None:
        lines.append(f"\nFID floor (train vs test, n = {n}): {fid_floor:.2f}")
    return "\n".join(lines) + "\n"


def write_sweep(
    out: str | Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    nfes: Sequence[int],
    fid_floor: float | None,
    n: int,
    notes: Sequence[str] = (),
    title: str = "FID vs NFE",
) -> list[Path]:
    """Write ``nfe_sweep.json``, ``nfe_sweep.md`` and the plot ``fid_vs_nfe.png`` (FID against
    real NFE, the floor dashed) to the existing folder ``out``, each atomically.

    Without matplotlib the plot is left out and a note in ``nfe_sweep.json``/``.md`` says how to
    get it (``pip install 'invkit[plot]'``).

    Args:
        out: the folder.
        rows: :func:`sweep_summary`'s rows.
        nfes: the nominal budgets (the plot's x ticks are the real counts of the first family).
        fid_floor: the train-vs-test FID of ``n`` images, if measured.
        n: the number of images.
        notes: the evaluation's notes, copied into ``nfe_sweep.json``.
        title: the plot's title.

    Returns:
        The files written.
    """
    out = Path(out)
    written, plot_note = [], None
    families = list(dict.fromkeys(r["family"] for r in rows))
    series = {
        fam: [(float(r["nfe"]), r["fid_fashion"]) for r in rows if r["family"] == fam and r["fid_fashion"] is not None]
        for fam in families
    }
    if any(series.values()):
        if extras.available("matplotlib"):
            hline = None if fid_floor is None else (fid_floor, "train-vs-test floor")
            written.append(
                plot_lines(out / "fid_vs_nfe.png", {k: v for k, v in series.items() if v}, title=title,
                           xlabel="network calls (NFE)", ylabel="fid_fashion", hline=hline, logx=True, xticks=nfes)
            )  # fmt: skip
        else:
            plot_note = f"fid_vs_nfe.png not drawn: matplotlib is not installed; {extras.PLOT_HINT}"
    notes = [*notes, plot_note] if plot_note else list(notes)
    written.append(write_json_atomic(out / "nfe_sweep.json", {"rows": list(rows), "fid_fashion_floor": fid_floor, "notes": notes}))
    md = sweep_markdown(rows, fid_floor=fid_floor, n=n) + (f"\nNote: {plot_note}\n" if plot_note else "")
    written.append(write_text_atomic(out / "nfe_sweep.md", md))
    return written
