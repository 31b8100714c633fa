r"""``Recipe``: an inverter, a guidance and a few numbers, run by the one generation loop.

For example:

    r = Recipe(inverter=DA(eta=0.4), guidance=BackProj(), t0=550,
               inversion_steps=15, generation_steps=85, eta=0.8, spacing="uniform")  # SSD-100
    x_hat = r.run(model, y, op, generator=g)

**With an inverter** (SSD, SDEdit, the inversion ablations; Liu et al. IJCAI 2024) the run starts
at ``x = A⁺y`` at t = 0, takes ``F − 1`` inverter steps up the inversion list
``τ_0 = 0 < … < τ_{F−1} = t0 − 1`` and then ``B`` generation steps down the generation list
``s_{B−1} = t0 − 1 > … > s_0 = 0`` with no jump between the two. **Without an inverter** (DDNM,
DDRM, DPS) it starts from noise at the top of the generation list; ``t0`` then defaults to the
model's ``T`` and the spacing to ``"leading"`` (DDRM-20 visits 950, 900, …, 0).

Each generation step is (SSD, Liu et al., IJCAI 2024, §3.3; DDNM, Wang et al., ICLR 2023):

    ε  = model(x, s_j);  x0 = (x − √(1−ᾱ)·ε)/√ᾱ  (clamped to [−1, 1] if ``clamp``)
    x0 = guidance.x0(x0, …);  x = guidance.update(x, x0, ε, …)

where the default update is ``√ᾱ′·x0 + √(1−η²)·√(1−ᾱ′)·ε + η·√(1−ᾱ′)·z`` (ᾱ′ = 1 at the last
step, which therefore returns the guided x0). See ``invkit.guidance``.

Time travel (DDNM, RePaint's jump schedule) is part of the timestep plan: with
``travel_length = l`` and ``travel_repeat = r``, after reaching list index j ∈ {0, l, 2l, …}
the walk goes back up l indices, r − 1 times per j. An upward step makes no network call: it
re-noises the last raw x0, ``x′ = √ᾱ′·x0 + √(1−ᾱ′)·z`` (as DDNM's reference sampler does).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import attrs
import torch
from tqdm.auto import tqdm

from . import rng
from .checks import EpsMonitor, check_run
from .errors import ConfigError, InvalidInputError
from .guidance import Guidance, NoGuidance
from .injection import AttentionInjection, open_session
from .inverters import Inverter, predict_x0
from .operator import Operator, no_checks
from .plan import Context, GenStep, generation_plan, travel_schedule
from .schedule import NoiseSchedule, timesteps
from .validators import boolean, instance_of, one_of, positive_int, unit_interval

__all__ = ["Recipe", "RunResult", "StepInfo", "travel_schedule"]


@attrs.frozen(slots=True)
class StepInfo:
    """What ``callback`` sees after every step.

    ``phase`` is ``"inversion"``, ``"generation"`` or ``"travel"`` (a DDNM time-travel step);
    ``index`` counts steps within the phase from 0; ``x`` is the new state at ``t_next``
    (``t_next = −1``: the output); ``x0`` is the clean estimate used (after the guidance during
    generation, the raw one re-noised during travel; None for DDPM inversion); ``eps`` the
    network output (None when no call was made).

    Attributes:
        phase: ``"inversion"``, ``"generation"`` or ``"travel"``.
        index: the step's number within its phase, from 0.
        t: the timestep the step started at.
        t_next: the timestep it reached (−1: the output).
        x: the new state.
        x0: the clean estimate used, or ``None``.
        eps: the network's output, or ``None`` when the step made no call.

    Examples:
        ```python
        trajectory = []
        x_hat = recipe.run(model, y, op, callback=lambda s: trajectory.append((s.phase, s.t, s.x0)))
        ```
    """

    phase: str
    index: int
    t: int
    t_next: int
    x: torch.Tensor
    x0: torch.Tensor | None
    eps: torch.Tensor | None


@attrs.frozen
class RunResult:
    """The output ``x``, the network calls really made (``nfe``), the visited timesteps and the
    wall time in seconds (CUDA is synchronised before the clock stops).

    Attributes:
        x: the restoration ``x̂``.
        nfe: the network calls really made (SSD-30 makes 29: F − 1 = 4 inversion calls and
            B = 25 generation calls; the paper counts 30).
        inversion_timesteps: the inversion list τ_0 = 0 < … < τ_{F−1} (empty without an
            inverter).
        generation_timesteps: the timestep of every generation step in visiting order
            (time-travel steps included).
        seconds: the wall time of the run.
    """

    x: torch.Tensor
    nfe: int
    inversion_timesteps: list[int]
    generation_timesteps: list[int]
    seconds: float


def _t0(instance, attribute, value):  # noqa: ANN001 - attrs validator signature
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"Recipe.t0 must be an integer timestep >= 1 (or None for the model's T), got {value!r}")


_ETA_HINT = " (the generation noise mix, 0 = DDIM, 1 = all fresh noise)"


class _DefaultEta(float):
    """The default ``Recipe.eta`` (0.8): equal to 0.8 in every way, but it says that no η was
    given, so a guidance without an η (DPS) can tell "left alone" from "asked for 0.8"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return float.__repr__(self)

    def __reduce__(self):  # noqa: ANN204 - pickles as itself
        return (_DefaultEta, (float(self),))


def _check_eta(recipe: "Recipe") -> None:
    """The η rule: ``Recipe.eta`` is the one generation η (docs/recipes.md, "The η rule")."""
    g = recipe.guidance
    own = getattr(g, "eta", None)
    if own is not None and float(own) != float(recipe.eta):
        raise ConfigError(
            f"{type(g).__name__}(eta={own}) disagrees with the Recipe's eta = {float(recipe.eta)}; the Recipe's eta is "
            f"the one generation η: drop eta= from {type(g).__name__}(...) and set Recipe(eta={own}) "
            f"(or invkit.recipe(..., eta={own}))"
        )
    if not g.uses_eta and not isinstance(recipe.eta, _DefaultEta):
        raise ConfigError(
            f"{type(g).__name__} has no generation η (its step is its own), so Recipe(eta={float(recipe.eta)}) would be "
            f"ignored; leave eta unset with this guidance"
        )


@attrs.frozen
class Recipe:
    """A solver: ``inverter`` + ``guidance`` + numbers. Defaults are the paper's SSD-100 numbers.

    A frozen value object: every field is checked at construction, ``repr`` shows every number,
    and ``attrs.evolve(recipe, t0=400)`` makes a variant.

    Args:
        inverter: ``None`` starts from noise; otherwise invert ``A⁺y`` up to ``t0 − 1``
            (``DA``, ``DDIM``, ``DDPM``).
        guidance: what keeps each generation step consistent with ``y`` (default
            ``NoGuidance()``).
        t0: the shortcut step; the lists live in ``[0, t0 − 1]``. Default 550 with an inverter,
            ``None`` (the model's ``T``) without.
        inversion_steps: F, the length of the inversion list (F − 1 inverter steps); at least
            2 with an inverter.
        generation_steps: B, the number of generation steps (B network calls).
        eta: the generation noise mix η ∈ [0, 1] (SSD 0.8, DDNM 0.85): the one generation η.
            A guidance with its own ``eta`` (DDRM, DDNM+) must leave it None or agree; DPS,
            which has no η, takes none (``ConfigError`` otherwise).
        spacing: ``"uniform"`` (SSD, default with an inverter), ``"leading"`` (default
            without), ``"quadratic"`` or ``"karras"`` (see ``invkit.schedule.timesteps``).
        clamp: clip x0 to [−1, 1] during generation (SSD, DPS: yes; DDNM, DDRM: no).
        travel_length: DDNM time-travel length l (1 with ``travel_repeat = 1``: none).
        travel_repeat: DDNM time-travel repeat r.
        name: a label (presets set it; it titles the progress bar).
        injection: attention injection (``invkit.injection.AttentionInjection``): record the
            chosen attention maps during inversion, replay them at the same generation
            timesteps; ``None`` (default) runs the network untouched.

    Raises:
        ConfigError: a field of the wrong type or range, F < 2 with an inverter, a travel
            length not smaller than B, or lists that do not fit in ``t0``.

    Examples:
        SSD-30 (Liu et al., IJCAI 2024, Table 1: F = 5, B = 25, t0 = 550, η_inv = 0.4):

        ```python
        import torch, invkit
        from invkit import Recipe, DA, BackProj

        op = invkit.operator("sr_bicubic", scale=4)
        model = invkit.backbone("fashion32")
        ssd30 = Recipe(inverter=DA(eta=0.4), guidance=BackProj(), t0=550,
                       inversion_steps=5, generation_steps=25, eta=0.8)
        res = ssd30.run(model, op.A(x), op, generator=torch.Generator().manual_seed(0),
                        return_info=True)
        res.nfe                                   # 29
        ```
    """

    inverter: Inverter | None = attrs.field(default=None, validator=instance_of(Inverter, "an Inverter (DA, DDIM, DDPM) or None", allow_none=True))
    guidance: Guidance = attrs.field(factory=NoGuidance, validator=instance_of(Guidance, "a Guidance (NoGuidance, BackProj, StagedBackProj, DDNMPlus, DDRM, DPS)"))
    t0: int | None = attrs.field(
        default=attrs.Factory(lambda self: 550 if self.inverter is not None else None, takes_self=True), validator=_t0
    )
    inversion_steps: int = attrs.field(default=15, validator=positive_int())
    generation_steps: int = attrs.field(default=85, validator=positive_int())
    eta: float = attrs.field(default=_DefaultEta(0.8), validator=unit_interval(_ETA_HINT))
    spacing: str = attrs.field(
        default=attrs.Factory(lambda self: "uniform" if self.inverter is not None else "leading", takes_self=True),
        validator=one_of(
            ("uniform", "leading", "quadratic", "karras"),
            " (uniform: SSD; leading: DDIM/DDNM/DDRM; quadratic, karras: denser near t = 0)",
        ),
    )
    clamp: bool = attrs.field(default=True, validator=boolean)
    travel_length: int = attrs.field(default=1, validator=positive_int())
    travel_repeat: int = attrs.field(default=1, validator=positive_int())
    name: str | None = None
    injection: AttentionInjection | None = attrs.field(
        default=None, validator=instance_of(AttentionInjection, "an AttentionInjection or None", allow_none=True)
    )

    def __attrs_post_init__(self) -> None:
        if self.inverter is not None and self.inversion_steps < 2:
            raise ConfigError(
                f"Recipe.inversion_steps = {self.inversion_steps}: with an inverter it must be >= 2 "
                f"(F timesteps from 0 to t0 − 1, F − 1 inverter steps)"
            )
        if self.travel_repeat > 1 and self.travel_length >= self.generation_steps:
            raise ConfigError(
                f"Recipe.travel_length = {self.travel_length} must be smaller than generation_steps = "
                f"{self.generation_steps} for time travel"
            )
        _check_eta(self)
        if self.t0 is not None:
            self.timesteps(self.t0)

    # -- the plan ------------------------------------------------------------------------------
    def timesteps(self, T: int = 1000) -> tuple[list[int], list[int]]:
        """(inversion list, generation list), both increasing, for a model with ``T`` timesteps.

        Args:
            T: the model's number of timesteps.

        Returns:
            ``(inversion, generation)``; the inversion list is empty without an inverter.

        Raises:
            ConfigError: the lists do not fit (``t0 > T``, more steps than timesteps, or an
                inversion list that does not end where generation starts).

        Examples:
            ```python
            Recipe(inverter=DA(), guidance=BackProj(), inversion_steps=5,
                   generation_steps=25).timesteps()[0]     # [0, 137, 274, 412, 549]
            ```
        """
        t0 = T if self.t0 is None else self.t0
        if t0 > T:
            raise ConfigError(f"Recipe.t0 = {t0} exceeds the model's T = {T}; use t0 <= {T}")
        gen = timesteps(self.generation_steps, t0, self.spacing, T=T)
        if self.inverter is None:
            return [], gen
        inv = timesteps(self.inversion_steps, t0, self.spacing, T=T)
        if self.injection is not None:  # generation must visit every injection timestep
            gen = self.injection.align(inv, gen)
        if inv[0] != 0 or inv[-1] != gen[-1]:
            raise ConfigError(
                f"the inversion list {inv[0]}…{inv[-1]} must run from 0 to where generation starts "
                f"({gen[-1]}); with {self.spacing!r} spacing and F = {self.inversion_steps}, "
                f"B = {self.generation_steps} they do not; use spacing='uniform' (both end at t0 − 1)"
            )
        return inv, gen

    def _steps(self, gen: list[int], schedule: NoiseSchedule) -> list[GenStep]:
        return generation_plan(gen, schedule.abar, self.eta, self.travel_length, self.travel_repeat)

    # -- the loop ------------------------------------------------------------------------------
    def run(
        self,
        model: Callable[..., torch.Tensor],
        y: torch.Tensor,
        op: Operator,
        *,
        generator: torch.Generator | None = None,
        x_T: torch.Tensor | None = None,
        callback: Callable[[StepInfo], Any] | None = None,
        return_info: bool = False,
        progress: bool = False,
        allow_any_size: bool = False,
        check_range: bool = True,
    ) -> torch.Tensor | RunResult:
        """Solve ``y = A x (+ noise)`` with ``model`` as the prior; returns ``x̂`` (or a
        :class:`RunResult` with ``return_info=True``).

        ``model(x, t) -> ε`` with a ``schedule`` attribute (a :class:`~invkit.models.Backbone`).
        ``x_T`` is the starting noise z ~ N(0, I) of a from-noise recipe (DDRM maps it through
        its spectral initialisation); without it, z is drawn from ``generator``. ``callback``
        sees a :class:`StepInfo` after every step; ``progress`` shows a tqdm bar. The same
        ``generator`` seed gives bit-identical output on the CPU.

        Before the first network call ``y`` is checked against the operator and the backbone
        (:func:`invkit.checks.check_run`: dtype, device, values, shape, channels, size, range);
        ``allow_any_size=True`` runs a fixed-size backbone at another size on purpose and
        ``check_range=False`` skips the [0, 255] / [0, 1] range check. Every ε is checked too (its
        shape, and NaN/Inf; on a GPU every few steps, without a per-step sync). The rules are in
        ``docs/recipes.md``, "Input rules"; a broken one raises an :class:`~invkit.errors.InvkitError`.

        Args:
            model: the prior, ``model(x, t) -> ε`` with ``t`` the integer timestep, and a
                ``NoiseSchedule`` in ``model.schedule``.
            y: the measurement ``(B, ...)``, as ``op.A(x)`` (plus noise) gives it.
            op: the operator that produced ``y``.
            generator: every random draw's source: one ``torch.Generator`` on ``y``'s device, or
                a list with one per sample (then a sample's result does not depend on its batch);
                ``None`` uses a fresh generator seeded with 0.
            x_T: the starting noise of a recipe without an inverter, shaped like
                ``op.input_shape(y.shape)``.
            callback: called with a ``StepInfo`` after every step.
            return_info: return a ``RunResult`` instead of the tensor.
            progress: show a progress bar.
            allow_any_size: run a fixed-size backbone at another size on purpose (e.g. after
                padding a larger image to a multiple of ``model.size_multiple``).
            check_range: check that ``y`` looks like [-1, 1] data (not [0, 255] or [0, 1]).

        Returns:
            ``x̂`` shaped like ``op.input_shape(y.shape)``, or a ``RunResult`` with the network
            calls really made (``nfe``), the visited timesteps and the wall time.

        Raises:
            InvalidInputError: ``y``, ``op``, ``model``, ``generator`` or ``x_T`` is not what it
                should be (checked before the first network call), or a network output ε is
                non-finite or misshapen (the error names the step and t).
            InvalidDTypeError: ``y`` is not a real floating tensor the backbone can take.
            ConfigError: the recipe's timestep lists do not fit the model's ``T``.
            CapabilityError: the guidance needs something the operator lacks (e.g. an SVD view
                for DDRM), raised before the first network call.
        """
        if not isinstance(allow_any_size, bool) or not isinstance(check_range, bool):
            raise InvalidInputError("allow_any_size and check_range must be True or False")
        y, x_shape, x_T = check_run(
            model, y, op, x_T=x_T, from_noise=self.inverter is None, allow_any_size=allow_any_size,
            check_range=check_range,
        )
        schedule = model.schedule
        inv, gen = self.timesteps(schedule.T)
        steps = self._steps(gen, schedule)
        g = rng.resolve(generator, y.device, y.shape[0])
        guidance = self.guidance
        ctx = guidance.start(Context(op, y, schedule.T if self.t0 is None else self.t0, len(gen)))
        # DPS differentiates through the network: autograd stays available (and is switched on per
        # step); every other recipe runs under inference mode.
        needs_grad = guidance.needs_grad
        outer = torch.no_grad() if needs_grad else torch.inference_mode()
        step_grad = torch.enable_grad if needs_grad else contextlib.nullcontext
        check_eps = EpsMonitor(y.device)
        abar = schedule.abar
        inv_abar = [float(abar[t]) for t in inv]
        clamp = self.clamp
        nfe = 0
        bar = tqdm(total=max(len(inv) - 1, 0) + len(steps), disable=not progress, desc=self.name or "recipe")
        start = time.perf_counter()
        # attention injection (None: a do-nothing session) checks the backbone before any call
        with no_checks(), outer, open_session(self.injection, model, inv) as inj:
            if self.inverter is not None:
                inverter = self.inverter
                x = op.pinv(y)
                for k in range(len(inv) - 1):
                    eps = None
                    if inverter.needs_eps:
                        with inj.call("inversion", inv[k]):
                            eps = check_eps(model(x, inv[k]), x, "inversion", k, inv[k])
                        nfe += 1
                    out = inverter.step(x, eps, inv_abar[k], inv_abar[k + 1], g)
                    x = out.x
                    if callback is not None:
                        callback(StepInfo("inversion", k, inv[k], inv[k + 1], x, out.x0, eps))
                    bar.update()
                check_eps.flush()
            else:
                if x_T is None:
                    x_T = rng.randn(x_shape, g, dtype=y.dtype, device=y.device)
                x = guidance.init(x_T, steps[0], ctx)
            x0_raw = x
            n_gen = n_travel = 0
            for st in steps:
                if st.travel:
                    x = st.sqrt_abar_next * x0_raw + st.sigma_next * rng.randn_like(x0_raw, g)
                    if callback is not None:
                        callback(StepInfo("travel", n_travel, st.t, st.t_next, x, x0_raw, None))
                    n_travel += 1
                    bar.update()
                    continue
                with step_grad():
                    if needs_grad:
                        x = x.detach().requires_grad_(True)
                    with inj.call("generation", st.t):
                        eps = check_eps(model(x, st.t), x, "generation", n_gen, st.t)
                    nfe += 1
                    x0 = predict_x0(x, eps, st.abar, clamp)
                    x0_raw = x0
                    x0 = guidance.x0(x0, st, ctx)
                    x = guidance.update(x, x0, eps, st, ctx, g)
                if needs_grad:
                    x, x0, eps, x0_raw = x.detach(), x0.detach(), eps.detach(), x0_raw.detach()
                if callback is not None:
                    callback(StepInfo("generation", n_gen, st.t, st.t_next, x, x0, eps))
                n_gen += 1
                bar.update()
            check_eps.flush()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        seconds = time.perf_counter() - start
        bar.close()
        # a plain tensor, not an inference tensor, so callers may modify it in place or use autograd
        x = x.clone()
        if not return_info:
            return x
        return RunResult(x, nfe, list(inv), [st.t for st in steps], seconds)
