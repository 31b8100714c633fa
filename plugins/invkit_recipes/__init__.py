r"""Built-in recipe presets: the paper's SSD settings, its baselines and its ablations.

Every preset is ``factory(task=None, **overrides) -> Recipe``: ``task`` picks the per-task
numbers (one of :data:`PRESET_TASKS`; None uses the SR numbers), ``overrides`` replace any
:class:`~invkit.Recipe` field (``invkit.recipe("ssd-100", task="sr", eta=0.0)``) or set the
guidance's own knobs where it has them (``sigma_y=``, ``zeta=``, ``t_stop=``, ``eta_b=``; the SSD
presets also take ``inversion_eta=``, the DA inversion's η as a plain number). The
bare family names ``ssd``, ``ddnm``, ``ddrm`` and ``dps`` take explicit step counts
(``invkit.recipe("ddnm", task="sr", generation_steps=20)``). Sources, network-call counts and
deviations are listed in ``docs/recipes.md``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import attrs

from invkit import hookimpl
from invkit._compat import deprecated_names
from invkit.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from invkit.guidance import DDRM, Guidance
    from invkit.inverters import Inverter
    from invkit.sampling import Recipe

# The engine imports torch and this module is imported to build `invkit --help`, so each function
# imports the engine parts it uses when it runs.

__all__ = ["PRESET_TASKS", "SSD_TASKS", "DPS_ZETA"]

#: The task families a preset knows numbers for (coarser than the evaluation tasks of
#: :data:`invkit.evaluation.EVAL_TASKS`: ``sr2``/``sr4``/``sr8`` all use ``"sr"``).
PRESET_TASKS = ("sr", "deblur", "inpainting", "colorization", "denoise")

#: SSD's per-task (t0, DA inversion η) from the paper's run scripts (spec ``ssd.md`` §5);
#: denoising has no script and takes the SR numbers.
SSD_TASKS: dict[str, tuple[int, float]] = {
    "sr": (550, 0.4),
    "deblur": (550, 0.4),
    "inpainting": (550, 0.4),
    "colorization": (750, 0.8),
    "denoise": (550, 0.4),
}

#: DPS step size ζ per task (DPS2022 configs: SR ×4 0.3, Gaussian deblur 0.3, inpainting 0.5).
#: DPS has no colorization or pure-denoising config: 0.3 there is our untuned choice.
DPS_ZETA: dict[str, float] = {"sr": 0.3, "deblur": 0.3, "inpainting": 0.5, "colorization": 0.3, "denoise": 0.3}



def _fields() -> tuple[str, ...]:
    from invkit.sampling import Recipe

    return tuple(f.name for f in attrs.fields(Recipe))


def _task(name: str, task: str | None) -> str:
    if task is None:
        return "sr"
    if not isinstance(task, str) or task not in PRESET_TASKS:
        raise UnknownNameError(f"recipe {name!r} has no task {task!r}; tasks: {', '.join(PRESET_TASKS)}")
    return task


def _make(
    name: str,
    base: dict[str, Any],
    overrides: dict[str, Any],
    guidance: Callable[..., Guidance] | None = None,
    guidance_kw: dict[str, Any] | None = None,
) -> Recipe:
    """``Recipe(**base)`` with ``overrides``; keys in ``guidance_kw`` go to ``guidance(...)``."""
    from invkit.sampling import Recipe

    _FIELDS = _fields()
    guidance_kw = dict(guidance_kw or {})
    unknown = set(overrides) - set(_FIELDS) - set(guidance_kw)
    if unknown:
        accepted = ", ".join(list(_FIELDS) + sorted(guidance_kw))
        raise ConfigError(f"recipe {name!r} got unknown option(s) {', '.join(sorted(unknown))}; it accepts {accepted}")
    kw = {k: v for k, v in overrides.items() if k not in guidance_kw or k in _FIELDS}
    if guidance is not None:
        g_args = {k: overrides.get(k, v) for k, v in guidance_kw.items()}
        if "guidance" in overrides and any(k in overrides for k in guidance_kw if k not in _FIELDS):
            raise ConfigError(f"recipe {name!r}: pass either guidance= or its options ({', '.join(guidance_kw)}), not both")
        base = {**base, "guidance": guidance(**g_args)}
    return Recipe(**{**base, "name": name, **kw})


def _require(name: str, overrides: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in overrides]
    if missing:
        raise ConfigError(
            f"recipe family {name!r} needs explicit {' and '.join(f'{k}=N' for k in missing)} "
            f"(or use a numbered preset such as {name}-100)"
        )


# -- SSD (Liu et al., IJCAI 2024) ---------------------------------------------------------------
def _ssd(name: str, task: str | None, F: int, B: int, overrides: dict[str, Any], *, plus: bool = False) -> Recipe:
    t0, eta_inv = SSD_TASKS[_task(name, task)]
    # a plain number for the DA inversion's η, so tuned presets are JSON (issue 13)
    eta_inv = overrides.pop("inversion_eta", eta_inv)
    from invkit.guidance import BackProj, StagedBackProj
    from invkit.inverters import DA

    base = dict(inverter=DA(eta=eta_inv), t0=t0, inversion_steps=F, generation_steps=B, eta=0.8, spacing="uniform")
    if plus:
        return _make(name, base, overrides, StagedBackProj, {"t_stop": 200})
    return _make(name, {**base, "guidance": BackProj()}, overrides)


def ssd_30(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD-30: DA inversion (F=5) + back projection (B=25), t0 550/750; 29 network calls."""
    return _ssd("ssd-30", task, 5, 25, overrides)


def ssd_100(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD-100: DA inversion (F=15) + back projection (B=85), t0 550/750; 99 network calls."""
    return _ssd("ssd-100", task, 15, 85, overrides)


def ssd_plus_100(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD+-100: as SSD-100 but back projection stops below t_stop=200 (noisy y); 99 calls."""
    return _ssd("ssd+-100", task, 15, 85, overrides, plus=True)


def ssd(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD with explicit inversion_steps=F and generation_steps=B (F − 1 + B network calls)."""
    _require("ssd", overrides, "inversion_steps", "generation_steps")
    F, B = overrides.pop("inversion_steps"), overrides.pop("generation_steps")
    return _ssd("ssd", task, F, B, overrides)


# -- SSD with attention injection / DPM-Solver++(2M) steps (issue 13) ---------------------------
#: The reference's injection choices (SSD commit bcc24cb, spec ssd.md §3.4): inversion-list
#: indices 6..13 at 100 NFE, 2 and 3 at 30 NFE; every decoder attention block.
SSD_INJECT_STEPS: dict[int, tuple[int, ...]] = {15: tuple(range(6, 14)), 5: (2, 3)}


def inject_steps(F: int) -> tuple[int, ...]:
    """The injection indices of the ``ssd-inject`` family for ``F`` inversion steps:
    ``k = ⌈0.4 (F − 1)⌉ … F − 2``, the rule both reference choices follow (6..13 at F = 15,
    2, 3 at F = 5); none for F = 2 (one inversion call, at τ_0 = 0, which holds no structure)."""
    return tuple(range(max(1, math.ceil(0.4 * (F - 1))), F - 1))


def ssd_inject(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD with attention injection, explicit inversion_steps=F, generation_steps=B (indices ⌈0.4(F−1)⌉…F−2)."""
    from invkit.injection import AttentionInjection

    _require("ssd-inject", overrides, "inversion_steps", "generation_steps")
    F, B = overrides.pop("inversion_steps"), overrides.pop("generation_steps")
    if isinstance(F, int) and not isinstance(F, bool):
        overrides.setdefault("injection", AttentionInjection(steps=inject_steps(F)))
    return _ssd("ssd-inject", task, F, B, overrides)


def ssd_inject_30(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD-30 with attention injection at inversion indices 2, 3 (t = 274, 412 at t0 = 550); 29 calls."""
    from invkit.injection import AttentionInjection

    overrides.setdefault("injection", AttentionInjection(steps=SSD_INJECT_STEPS[5]))
    return _ssd("ssd-inject-30", task, 5, 25, overrides)


def ssd_inject_100(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD-100 with attention injection at inversion indices 6..13 (t = 235…510 at t0 = 550); 99 calls."""
    from invkit.injection import AttentionInjection

    overrides.setdefault("injection", AttentionInjection(steps=SSD_INJECT_STEPS[15]))
    return _ssd("ssd-inject-100", task, 15, 85, overrides)


def _ssd_2m(name: str, task: str | None, F: int, B: int, overrides: dict[str, Any]) -> Recipe:
    from invkit.guidance import BackProj
    from invkit.multistep import DPMSolver2M

    overrides.setdefault("guidance", DPMSolver2M(BackProj()))
    return _ssd(name, task, F, B, overrides)


def ssd_2m_30(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD-30 with DPM-Solver++(2M) generation steps around back projection; 29 calls."""
    return _ssd_2m("ssd-2m-30", task, 5, 25, overrides)


def ssd_2m(task: str | None = None, **overrides: Any) -> Recipe:
    """SSD-2M with explicit inversion_steps=F and generation_steps=B (F − 1 + B network calls)."""
    _require("ssd-2m", overrides, "inversion_steps", "generation_steps")
    F, B = overrides.pop("inversion_steps"), overrides.pop("generation_steps")
    return _ssd_2m("ssd-2m", task, F, B, overrides)


# -- DDNM / DDNM+ (Wang et al., ICLR 2023) -------------------------------------------------------
def _ddnm(name: str, task: str | None, B: int, overrides: dict[str, Any]) -> Recipe:
    _task(name, task)
    from invkit.guidance import BackProj

    base = dict(guidance=BackProj(), generation_steps=B, eta=0.85, clamp=False, spacing="leading")
    return _make(name, base, overrides)


def ddnm_30(task: str | None = None, **overrides: Any) -> Recipe:
    """DDNM-30: from noise, back projection, 30 leading steps over T, η=0.85; 30 calls."""
    return _ddnm("ddnm-30", task, 30, overrides)


def ddnm_100(task: str | None = None, **overrides: Any) -> Recipe:
    """DDNM-100: from noise, back projection, 100 leading steps over T, η=0.85; 100 calls."""
    return _ddnm("ddnm-100", task, 100, overrides)


def ddnm(task: str | None = None, **overrides: Any) -> Recipe:
    """DDNM with explicit generation_steps=B (B network calls; time travel adds more)."""
    _require("ddnm", overrides, "generation_steps")
    return _ddnm("ddnm", task, overrides.pop("generation_steps"), overrides)


def ddnm_plus(task: str | None = None, **overrides: Any) -> Recipe:
    """DDNM+: noise-aware DDNM (sigma_y= in [-1, 1] units), 100 leading steps, η=0.85; 100 calls."""
    _task("ddnm+", task)
    from invkit.guidance import DDNMPlus

    base = dict(generation_steps=100, eta=0.85, clamp=False, spacing="leading")
    return _make("ddnm+", base, overrides, DDNMPlus, {"sigma_y": 0.0, "spectral": True})


# -- DDRM (Kawar et al., NeurIPS 2022) ----------------------------------------------------------
def _ddrm(name: str, task: str | None, B: int, overrides: dict[str, Any]) -> Recipe:
    _task(name, task)
    eta = overrides.get("eta", 0.85)
    base = dict(generation_steps=B, eta=eta, clamp=False, spacing="leading")
    from invkit.guidance import DDRM

    def make(sigma_y: float, eta_b: float) -> DDRM:
        return DDRM(sigma_y=sigma_y, eta=eta, eta_b=eta_b)

    return _make(name, base, overrides, make, {"sigma_y": 0.0, "eta_b": 1.0})


def ddrm_20(task: str | None = None, **overrides: Any) -> Recipe:
    """DDRM-20: spectral DDRM from noise, 20 leading steps (950, 900, …, 0), η=0.85, η_b=1; 20 calls."""
    return _ddrm("ddrm-20", task, 20, overrides)


def ddrm_30(task: str | None = None, **overrides: Any) -> Recipe:
    """DDRM-30: spectral DDRM from noise, 30 leading steps, η=0.85, η_b=1; 30 calls."""
    return _ddrm("ddrm-30", task, 30, overrides)


def ddrm_100(task: str | None = None, **overrides: Any) -> Recipe:
    """DDRM-100: spectral DDRM from noise, 100 leading steps, η=0.85, η_b=1; 100 calls."""
    return _ddrm("ddrm-100", task, 100, overrides)


def ddrm(task: str | None = None, **overrides: Any) -> Recipe:
    """DDRM with explicit generation_steps=B (B network calls)."""
    _require("ddrm", overrides, "generation_steps")
    return _ddrm("ddrm", task, overrides.pop("generation_steps"), overrides)


# -- DPS (Chung et al., ICLR 2023) --------------------------------------------------------------
def _dps(name: str, task: str | None, B: int, overrides: dict[str, Any]) -> Recipe:
    zeta = DPS_ZETA[_task(name, task)]
    base = dict(generation_steps=B, clamp=True, spacing="leading")
    from invkit.guidance import DPS
    return _make(name, base, overrides, DPS, {"zeta": zeta})


def dps(task: str | None = None, **overrides: Any) -> Recipe:
    """DPS: 1000 DDPM ancestral steps with the residual-norm gradient (ζ per task); 1000 calls.

    With explicit ``generation_steps=N`` it runs N leading steps instead."""
    return _dps("dps", task, overrides.pop("generation_steps", 1000), overrides)


def dps_250(task: str | None = None, **overrides: Any) -> Recipe:
    """DPS-250: DPS on 250 leading steps (0, 4, …, 996); 250 calls."""
    return _dps("dps-250", task, 250, overrides)


# -- SDEdit and the SSD ablations (paper Tab. S2) -------------------------------------------------
def _ablation(name: str, task: str | None, inverter: Callable[[float], Inverter], overrides: dict[str, Any]) -> Recipe:
    t0, eta_inv = SSD_TASKS[_task(name, task)]
    from invkit.guidance import NoGuidance

    base = dict(
        inverter=inverter(eta_inv), guidance=NoGuidance(), t0=t0, inversion_steps=15, generation_steps=85,
        eta=0.8, spacing="uniform",
    )
    return _make(name, base, overrides)


def sdedit(task: str | None = None, **overrides: Any) -> Recipe:
    """SDEdit: forward-noise A⁺y to t0 (DDPM, no calls), unguided generation (B=85); 85 calls."""
    from invkit.inverters import DDPM

    return _ablation("sdedit", task, lambda _: DDPM(), overrides)


def ddim_inversion(task: str | None = None, **overrides: Any) -> Recipe:
    """Ablation: DDIM inversion (F=15) + unguided generation (B=85); 99 calls."""
    from invkit.inverters import DDIM

    return _ablation("ddim-inversion", task, lambda _: DDIM(), overrides)


def da_inversion(task: str | None = None, **overrides: Any) -> Recipe:
    """Ablation: DA inversion (F=15, η per task) + unguided generation (B=85); 99 calls."""
    from invkit.inverters import DA

    return _ablation("da-inversion", task, lambda eta: DA(eta=eta), overrides)


PRESETS: dict[str, tuple[Callable[..., Recipe], int | None]] = {
    "ssd-30": (ssd_30, 29),
    "ssd-100": (ssd_100, 99),
    "ssd+-100": (ssd_plus_100, 99),
    "ssd": (ssd, None),
    "ssd-inject-30": (ssd_inject_30, 29),
    "ssd-inject-100": (ssd_inject_100, 99),
    "ssd-inject": (ssd_inject, None),
    "ssd-2m-30": (ssd_2m_30, 29),
    "ssd-2m": (ssd_2m, None),
    "ddnm-30": (ddnm_30, 30),
    "ddnm-100": (ddnm_100, 100),
    "ddnm+": (ddnm_plus, 100),
    "ddnm": (ddnm, None),
    "ddrm-20": (ddrm_20, 20),
    "ddrm-30": (ddrm_30, 30),
    "ddrm-100": (ddrm_100, 100),
    "ddrm": (ddrm, None),
    "dps": (dps, 1000),
    "dps-250": (dps_250, 250),
    "sdedit": (sdedit, 85),
    "ddim-inversion": (ddim_inversion, 99),
    "da-inversion": (da_inversion, 99),
}


@hookimpl
def invkit_register_recipes(register):  # type: ignore[no-untyped-def]
    for name, (factory, nfe) in PRESETS.items():
        register(name, factory, nfe=nfe, tasks=PRESET_TASKS)
    # tuned presets (`invkit tune`): the shipped file, then $INVKIT_PRESETS (docs/recipes.md)
    from .tuned import register_tuned

    register_tuned(register)


__getattr__ = deprecated_names(__name__, {"TASKS": "invkit_recipes:PRESET_TASKS"})
