r"""``invkit bench gmm``: recipes against the exact posterior of a Gaussian-mixture prior.

The MCGdiff benchmark (Cardoso et al., ICLR 2024, §5.1; spec ``gmm.md`` §1): the 25-mode grid
prior (identity covariances, spacing 8, weights ``z²/Σz²``) in ``d ∈ {8, 80, 800}``; random
``A`` (``d_y × d``, ``d_y ∈ {1, 2, 4}``) with a random orientation and sorted U(0, 1) singular
values; ``y = A x* + σ_y n`` with ``σ_y = u·max(s)``, ``u ~ U(0, 1)``, unless ``--sigma-y`` fixes
it (TMPD's protocol). The prior is the recipes' backbone (its exact eps), the exact posterior
gives the reference samples, and each cell reports the sliced Wasserstein distance (SW1 by
default: MCGdiff's metric) mean ± 1.96·std/√n over the problems, beside the noise floor (SW
between two exact posterior sample sets of the same size, on the same slices) and the score of
exact prior samples (a sampler that ignores y). A last table gives the mean residual ‖A x̂ − y‖
beside the exact posterior's: 0 marks a recipe that returns consistent points.

How the image presets map onto this vector prior (all with the clamps off: the prior is not in
[−1, 1]; the timesteps are each recipe's own, not MCGdiff's A-adapted grid):

- ``ssd`` / ``ssd+``: DA(η = 0.4) inversion of ``A⁺y`` to ``t0 − 1`` (``--t0``, default 550, the
  paper's SR/deblur value), generation η = 0.8; an N-step budget is split as SSD-100 splits 100:
  ``F = max(2, round(0.15·N))`` inversion timesteps and ``B = N − F`` generation steps (20 → 3 + 17,
  19 network calls; 100 → 15 + 85, 99 calls). ``ssd+`` stops projecting below t = 200.
- ``ddnm``: back projection from noise, N leading steps, η = 0.85 (noise-unaware).
- ``ddnm+`` / ``ddrm``: the noise-aware spectral forms with the problem's σ_y (DDRM η = 0.85,
  η_b = 1, as MCGdiff ran it).
- ``dps``: N leading DDPM steps, ζ = ``--zeta`` (default 0.2: MCGdiff's ζ = 0.1 on the squared
  norm, ``ζ/‖r‖·∇‖r‖² = 2ζ·∇‖r‖``).
- ``sdedit``: forward noising of ``A⁺y`` to ``t0 − 1`` (exact, no calls), N unguided steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from typing import Any

import torch
from tqdm.auto import tqdm

from invkit.errors import ConfigError, InvalidInputError

FAMILIES = ("ssd", "ssd+", "ddnm", "ddnm+", "ddrm", "dps", "sdedit")


def ssd_split(steps: int) -> tuple[int, int]:
    """(F, B): SSD-100's 15/85 split of an N-step budget, F = max(2, round(0.15·N)), B = N − F."""
    F = max(2, round(0.15 * steps))
    if steps - F < 1:
        raise ConfigError(f"SSD needs at least 3 steps to split into inversion and generation, got {steps}")
    return F, steps - F


def build_recipe(family: str, steps: int, *, sigma_y: float, t0: int = 550, zeta: float = 0.2):
    """The recipe ``family`` with an N-step budget, set up for an unbounded vector prior (module doc)."""
    import invkit
    from invkit import DA

    if family in ("ssd", "ssd+"):
        F, B = ssd_split(steps)
        preset = "ssd" if family == "ssd" else "ssd+-100"
        return invkit.recipe(preset, task="sr", inversion_steps=F, generation_steps=B, t0=t0, clamp=False,
                             inverter=DA(eta=0.4, clamp=False))
    if family == "ddnm":
        return invkit.recipe("ddnm", task="sr", generation_steps=steps)
    if family == "ddnm+":
        return invkit.recipe("ddnm+", task="sr", generation_steps=steps, sigma_y=sigma_y)
    if family == "ddrm":
        return invkit.recipe("ddrm", task="sr", generation_steps=steps, sigma_y=sigma_y)
    if family == "dps":
        return invkit.recipe("dps", task="sr", generation_steps=steps, zeta=zeta, clamp=False)
    if family == "sdedit":
        return invkit.recipe("sdedit", task="sr", inversion_steps=2, generation_steps=steps, t0=t0, clamp=False)
    raise ConfigError(f"unknown recipe family {family!r} for the GMM benchmark; choose from {', '.join(FAMILIES)}")


def add_arguments(parser: argparse.ArgumentParser, name: str = "gmm") -> None:
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 80, 800], help="prior dimensions d (even)")
    parser.add_argument("--dys", type=int, nargs="+", default=[1, 2, 4], help="measurement dimensions d_y")
    parser.add_argument("--problems", type=int, default=20, help="random problems per (d, d_y) cell")
    parser.add_argument("--samples", type=int, default=200,
                        help="samples per problem: solver outputs, reference posterior samples and the floor's second set")
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 100], help="step budgets (one table each)")
    parser.add_argument("--recipes", nargs="+", default=list(FAMILIES), choices=FAMILIES, metavar="RECIPE",
                        help=f"recipe families ({', '.join(FAMILIES)})")
    parser.add_argument("--sigma-y", type=float, default=None,
                        help="fixed noise level σ_y (default: U(0,1)·max singular value per problem, as MCGdiff)")
    parser.add_argument("--t0", type=int, default=None, help="SSD/SDEdit shortcut step (default 550)")
    parser.add_argument("--zeta", type=float, default=None, help="DPS step size on the residual norm (default 0.2)")
    parser.add_argument("--p", type=int, default=1, choices=(1, 2), help="SW order: 1 (MCGdiff, TMPD) or 2 (POT)")
    parser.add_argument("--slices", type=int, default=1000, help="SW projections (fixed per d, shared by all methods)")
    parser.add_argument("--equal-weights", action="store_true", help="weights 1/25 (TMPD) instead of z²/Σz²")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1 is fastest for these small products on a shared CPU)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every run as JSON")
    parser.add_argument("--out", "--output", dest="output", default=None, metavar="PATH", help="also write the Markdown report here")
    parser.add_argument("--quiet", "--no-progress", dest="no_progress", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> None:
    from invkit.cli import check_output_file

    if args.t0 is not None and not {"ssd", "ssd+", "sdedit"} & set(args.recipes):
        raise InvalidInputError("--t0 sets SSD/SDEdit's shortcut step, and no ssd, ssd+ or sdedit is in --recipes: drop it")
    if args.zeta is not None and "dps" not in args.recipes:
        raise InvalidInputError("--zeta sets DPS's step size, and dps is not in --recipes: drop it")
    args.t0 = 550 if args.t0 is None else args.t0
    args.zeta = 0.2 if args.zeta is None else args.zeta
    if args.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {args.threads}")
    if not (math.isfinite(args.zeta) and args.zeta > 0):
        raise InvalidInputError(f"--zeta must be a finite number > 0, got {args.zeta}")
    for flag, path in (("--out", args.output), ("--json", args.json)):
        if path:
            check_output_file(path, flag)
    for d in args.dims:
        if d < 2 or d % 2:
            raise InvalidInputError(f"--dims: the grid prior needs even d >= 2, got {d}")
    for dy in args.dys:
        if not 1 <= dy <= min(args.dims):
            raise InvalidInputError(f"--dys: d_y must be in [1, min(dims)], got {dy}")
    if {"ssd", "ssd+"} & set(args.recipes):
        for s in args.steps:
            ssd_split(s)
    if args.problems < 1 or args.samples < 2 or args.slices < 1:
        raise InvalidInputError("--problems, --samples (>= 2) and --slices must be positive")
    if args.sigma_y is not None and not (math.isfinite(args.sigma_y) and args.sigma_y >= 0):
        raise InvalidInputError(f"--sigma-y must be >= 0, got {args.sigma_y}")
    if not 1 <= args.t0 <= 1000:
        raise InvalidInputError(f"--t0 must be in [1, 1000], got {args.t0}")


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Every (d, d_y, problem, steps, recipe) run; returns the records and the floors."""
    import invkit
    from .problems import grid_prior, random_problem
    from .sliced import random_directions, sliced_wasserstein

    records: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    total = len(args.dims) * len(args.dys) * args.problems * len(args.steps) * len(args.recipes)
    bar = tqdm(total=total, disable=args.no_progress, desc="gmm", file=sys.stderr)
    n = args.samples
    for a, d in enumerate(args.dims):
        # weights drawn once per dimension (MCGdiff: once per dimension and step setting)
        prior = grid_prior(d, equal_weights=args.equal_weights, generator=torch.Generator().manual_seed(args.seed * 7919 + d))
        theta = random_directions(d, args.slices, generator=torch.Generator().manual_seed(args.seed * 7919 + 1 + d))
        for b, d_y in enumerate(args.dys):
            for i in range(args.problems):
                seed = args.seed * 1_000_003 + 10_000 * (a * len(args.dys) + b) + i
                g = torch.Generator().manual_seed(seed)
                problem = random_problem(prior, d_y, sigma_y=args.sigma_y, generator=g)
                post = problem.posterior(prior)
                ref = post.sample(n, generator=g)
                floor = sliced_wasserstein(post.sample(n, generator=g), ref, p=args.p, directions=theta)
                op = invkit.operator("matrix", M=problem.A)
                y = problem.y.expand(n, d_y).clone()
                # what a sampler that ignores y scores (its own stream: the other numbers stay put)
                blind = prior.sample(n, generator=torch.Generator().manual_seed(2**40 + seed))
                floors.append(dict(d=d, d_y=d_y, problem=i, sigma_y=problem.sigma_y, floor=floor,
                                   prior=sliced_wasserstein(blind, ref, p=args.p, directions=theta),
                                   residual=float((op.A(ref) - y).norm(dim=1).mean())))
                for steps in args.steps:
                    for k, family in enumerate(args.recipes):
                        recipe = build_recipe(family, steps, sigma_y=problem.sigma_y, t0=args.t0, zeta=args.zeta)
                        rg = torch.Generator().manual_seed(seed * 131 + steps * 17 + k)
                        res = recipe.run(prior, y, op, generator=rg, return_info=True)
                        if bool(torch.isfinite(res.x).all()):
                            sw = sliced_wasserstein(res.x, ref, p=args.p, directions=theta)
                        else:
                            sw = float("nan")
                        resid = float((op.A(res.x) - y).norm(dim=1).mean())
                        records.append(dict(d=d, d_y=d_y, problem=i, steps=steps, recipe=family, nfe=res.nfe,
                                            sw=sw, residual=resid, seconds=res.seconds))
                        bar.update()
    bar.close()
    return {"records": records, "floors": floors}


def _ci(values: list[float]) -> str:
    from .sliced import ci95

    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "diverged"
    mean, half = ci95(finite)
    bad = len(values) - len(finite)
    text = f"{mean:.2f} ± {half:.2f}" if math.isfinite(half) else f"{mean:.2f}"
    return text + (f" ({bad} NaN)" if bad else "")


def report(result: dict[str, Any], args: argparse.Namespace, command: str, seconds: float) -> str:
    """The Markdown tables: one per step budget, rows (d, d_y), the floor then each recipe."""
    records, floors = result["records"], result["floors"]
    sw_name = "SW1 = mean over slices of W1" if args.p == 1 else "SW2 = √(mean over slices of W2²)"
    sigma = "σ_y = U(0,1)·max singular value per problem" if args.sigma_y is None else f"σ_y = {args.sigma_y:g} fixed"
    lines = [
        "## GMM ground truth (`invkit bench gmm`)",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; wall time {seconds / 60:.1f} min",
        f"- prior: 25-mode grid, identity covariances, {'equal weights' if args.equal_weights else 'weights z²/Σz²'}; "
        f"{args.problems} random problems per (d, d_y); {sigma}",
        f"- metric: {sw_name}, {args.slices} fixed random slices per d, {args.samples} solver samples vs "
        f"{args.samples} exact posterior samples; mean ± 1.96·std/√{args.problems}. "
        f"floor = SW between two exact posterior sample sets of the same sizes; prior = SW of exact "
        f"prior samples (a sampler that ignores y).",
        f"- SSD/SDEdit t0 = {args.t0}; DPS ζ = {args.zeta:g}; header: network calls per run (measured).",
        "",
    ]
    for steps in args.steps:
        nfe = {}
        for r in records:
            if r["steps"] == steps:
                nfe[r["recipe"]] = r["nfe"]
        lines.append(f"### {steps} steps")
        lines.append("")
        head = ["d", "d_y", "floor", "prior"] + [f"{f} ({nfe.get(f, '?')})" for f in args.recipes]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for d in args.dims:
            for d_y in args.dys:
                cell = [f for f in floors if f["d"] == d and f["d_y"] == d_y]
                row = [str(d), str(d_y), _ci([f["floor"] for f in cell]), _ci([f["prior"] for f in cell])]
                for fam in args.recipes:
                    row.append(_ci([r["sw"] for r in records
                                    if r["d"] == d and r["d_y"] == d_y and r["steps"] == steps and r["recipe"] == fam]))
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    steps = max(args.steps)
    lines += [
        f"### consistency at {steps} steps: mean ‖A x̂ − y‖ per sample (exact posterior samples in the third column)",
        "",
        "| " + " | ".join(["d", "d_y", "posterior", *args.recipes]) + " |",
        "|" + "---|" * (3 + len(args.recipes)),
    ]
    for d in args.dims:
        for d_y in args.dys:
            post = [f["residual"] for f in floors if f["d"] == d and f["d_y"] == d_y]
            row = [str(d), str(d_y), f"{sum(post) / len(post):.3f}"]
            for fam in args.recipes:
                vals = [r["residual"] for r in records
                        if r["d"] == d and r["d_y"] == d_y and r["steps"] == steps and r["recipe"] == fam]
                finite = [v for v in vals if math.isfinite(v)]
                row.append(f"{sum(finite) / len(finite):.3f}" if finite else "diverged")
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return "\n".join(lines)


def canonical_command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, every setting spelled out."""
    parts = ["invkit bench gmm", "--dims", *map(str, args.dims), "--dys", *map(str, args.dys),
             "--problems", str(args.problems), "--samples", str(args.samples), "--steps", *map(str, args.steps),
             "--recipes", *args.recipes, "--t0", str(args.t0), "--zeta", f"{args.zeta:g}", "--p", str(args.p),
             "--slices", str(args.slices), "--seed", str(args.seed)]
    if args.sigma_y is not None:
        parts += ["--sigma-y", f"{args.sigma_y:g}"]
    if args.equal_weights:
        parts.append("--equal-weights")
    return " ".join(shlex.quote(p) if p != "invkit bench gmm" else p for p in parts)


def machine() -> str:
    return f"{os.cpu_count()}-core CPU, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


def run(args: argparse.Namespace) -> int:
    _check(args)
    torch.set_num_threads(args.threads)
    command = canonical_command(args)
    start = time.perf_counter()
    result = run_benchmark(args)
    seconds = time.perf_counter() - start
    text = report(result, args, command, seconds)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": command, "machine": machine(), "seconds": seconds, "settings": settings, **result},
                      f, indent=1)
    return 0
