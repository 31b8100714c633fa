r"""Attention injection: replay the inversion's self-attention maps during generation.

SSD's first version (Liu et al., arXiv 2305.16965v1, the "attention injection" ablation of
Appendix F / Tab. S2) stores, during the inversion of ``A⁺y``, the softmax attention
probabilities ``P = softmax(QᵀK/√c)`` of chosen decoder attention layers at chosen timesteps,
and at the same timesteps of the generation replaces the layers' own probabilities by the stored
ones: the generation's Q and K are discarded, its V is kept, so a layer computes ``V·P_inv``.
The structure of ``A⁺y`` (where attention looks) is thereby carried into generation.

**The backbone capability.** A backbone supports injection when it (or its ``.net``) has
``attention_layers() -> dict[name, block]`` whose blocks read an ``attn_probs_hook`` attribute:
``None`` (the default: nothing happens, the outputs are bit-identical) or a callable
``hook(P) -> P`` applied to the probabilities after the softmax. The ddim-repo DDPM UNet
(``invkit_ddpm``, also ``fashion32``) and guided-diffusion's ADM (``invkit_adm``) have it; the
decoder blocks are named ``output_<k>_attn`` (see those modules for ``k``).

**The part.** ``AttentionInjection(steps=(6, …, 13))`` in ``Recipe(injection=...)``; ``steps``
are indices into the recipe's inversion list (the reference's ``--aligned_timestep``), and every
chosen timestep is put into the generation list (:meth:`AttentionInjection.align`) so that
generation visits it. ``Recipe.run`` opens one :class:`InjectionSession` per run and wraps each
network call in ``session.call(phase, t)``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import attrs
import torch

from .errors import CapabilityError, ConfigError

__all__ = ["AttentionInjection", "InjectionSession", "attention_layers", "DECODER"]

#: ``layers=DECODER`` selects every decoder attention block (names starting with ``output_``),
#: the reference's choice for both of its backbones.
DECODER = "decoder"


def attention_layers(model: Any) -> dict[str, torch.nn.Module]:
    """The injectable attention blocks of ``model`` (or of ``model.net``), by name.

    Args:
        model: a backbone.

    Returns:
        ``{name: block}`` in execution order.

    Raises:
        CapabilityError: the backbone does not expose ``attention_layers()``.
    """
    for obj in (model, getattr(model, "net", None)):
        fn = getattr(obj, "attention_layers", None)
        if callable(fn):
            return dict(fn())
    raise CapabilityError(
        f"attention injection needs a backbone whose net exposes attention_layers() with hookable "
        f"attention blocks (the ddpm, fashion32 and adm backbones do); {type(model).__name__} has none: "
        f"drop injection= from the recipe"
    )


def _steps(instance, attribute, value):  # noqa: ANN001 - attrs validator signature
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ConfigError(f"AttentionInjection.steps must be inversion-list indices (integers >= 0), got {value!r}")


def _layers(instance, attribute, value):  # noqa: ANN001 - attrs validator signature
    if value == DECODER:
        return
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value) or not value:
        raise ConfigError(
            f"AttentionInjection.layers must be {DECODER!r} or a non-empty tuple of layer names such as "
            f"('output_0_attn',), got {value!r}"
        )


def _tuple(value: Any) -> Any:
    return value if isinstance(value, str) else tuple(value)


@attrs.frozen
class AttentionInjection:
    r"""Record attention maps during inversion, replay them during generation at the same t.

    Args:
        steps: indices ``k`` into the inversion list ``τ_0 < … < τ_{F−1}``; maps are recorded
            at the inversion calls at ``τ_k`` (so ``k ≤ F − 2``: ``τ_{F−1}`` has no inversion
            call) and replayed at the generation calls at ``τ_k``. The reference used 6..13 for
            100 NFE (F = 15) and 2, 3 for 30 NFE (F = 5). Empty: no injection at all.
        layers: ``"decoder"`` (every decoder attention block, the reference's choice) or a tuple
            of block names from the backbone's ``attention_layers()``.

    Raises:
        ConfigError: negative or non-integer steps, or malformed layer names.

    Examples:
        ```python
        from invkit import Recipe, DA, BackProj
        from invkit.injection import AttentionInjection

        r = Recipe(inverter=DA(eta=0.4), guidance=BackProj(), inversion_steps=5, generation_steps=25,
                   injection=AttentionInjection(steps=(2, 3)))     # records/replays at t = 274, 412
        ```
    """

    steps: tuple[int, ...] = attrs.field(converter=tuple, validator=_steps)
    layers: str | tuple[str, ...] = attrs.field(default=DECODER, converter=_tuple, validator=_layers)

    def timesteps(self, inv: Sequence[int]) -> list[int]:
        """The injection timesteps ``τ_k`` for the inversion list ``inv``.

        Raises:
            ConfigError: an index beyond ``F − 2`` (no inversion call there to record), or no
                inversion at all.
        """
        if self.steps and len(inv) < 2:
            raise ConfigError(
                "attention injection records its maps during inversion: use it in a recipe with an inverter (DA, DDIM)"
            )
        bad = [k for k in self.steps if k > len(inv) - 2]
        if bad:
            raise ConfigError(
                f"AttentionInjection.steps {bad} point past the last inversion call: with F = {len(inv)} "
                f"inversion timesteps the indices must be <= {len(inv) - 2}"
            )
        return sorted({int(inv[k]) for k in self.steps})

    def align(self, inv: Sequence[int], gen: Sequence[int]) -> list[int]:
        """The generation list with every injection timestep in it.

        As the reference's ``align_lists``: each injection timestep τ replaces the first
        generation timestep ≥ τ (the list stays strictly increasing). For SSD's uniform lists
        this changes nothing except at t0 = 750, F = 15 (375 → 374, 589 → 588, 704 → 696).

        Args:
            inv: the inversion list.
            gen: the increasing generation list.

        Returns:
            The aligned generation list.
        """
        out = list(gen)
        for tau in self.timesteps(inv):
            j = next((j for j, s in enumerate(out) if s >= tau), None)
            if j is None:
                raise ConfigError(f"injection timestep {tau} lies above the generation list (top {out[-1]})")
            out[j] = tau
        return out

    def open(self, model: Any, inv: Sequence[int]) -> "InjectionSession":
        """A fresh per-run store; checks the backbone before any network call.

        Args:
            model: the backbone.
            inv: the run's inversion list.

        Returns:
            The session ``Recipe.run`` uses for this run.

        Raises:
            CapabilityError: the backbone cannot inject attention, or lacks a named layer.
        """
        blocks = attention_layers(model)
        if self.layers == DECODER:
            names = [n for n in blocks if n.startswith("output_")]
            if not names:
                raise CapabilityError(f"{type(model).__name__} has no decoder attention blocks (output_*) to inject")
        else:
            missing = [n for n in self.layers if n not in blocks]
            if missing:
                raise CapabilityError(
                    f"{type(model).__name__} has no attention layer(s) {missing}; it has {', '.join(blocks)}"
                )
            names = list(self.layers)
        return InjectionSession({n: blocks[n] for n in names}, frozenset(self.timesteps(inv)))


class InjectionSession:
    """One run's store of attention maps and the hooks that record or replay them.

    ``call(phase, t)`` is a context manager around one network call: at an injection timestep it
    hooks the chosen blocks to record (``"inversion"``) or replay (``"generation"``) their
    probabilities, keyed by ``(t, layer)``; elsewhere it does nothing. ``close()`` removes every
    hook (``Recipe.run`` uses the session as a context manager).

    Attributes:
        blocks: the hooked blocks by name.
        timesteps: the injection timesteps.
        maps: the stored probabilities, ``{(t, layer): P}``.
    """

    def __init__(self, blocks: dict[str, torch.nn.Module], timesteps: frozenset[int]):
        self.blocks = blocks
        self.timesteps = timesteps
        self.maps: dict[tuple[int, str], torch.Tensor] = {}

    def _record(self, t: int, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def hook(p: torch.Tensor) -> torch.Tensor:
            self.maps[(t, name)] = p.detach()
            return p

        return hook

    def _replay(self, t: int, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        stored = self.maps.get((t, name))
        if stored is None:
            # Generation reached an injection timestep the inversion never recorded (e.g. a
            # caller driving the session by hand): nothing to replay, the layer runs unchanged.
            return lambda p: p

        def hook(p: torch.Tensor) -> torch.Tensor:
            if p.shape != stored.shape:
                raise CapabilityError(
                    f"attention map of {name} at t = {t} has shape {tuple(p.shape)} but the inversion stored "
                    f"{tuple(stored.shape)}; injection needs the same batch and image size in both phases"
                )
            return stored.to(p.dtype)

        return hook

    @contextlib.contextmanager
    def call(self, phase: str, t: int) -> Iterator[None]:
        """Hook the blocks for one network call at timestep ``t`` of ``phase``.

        Args:
            phase: ``"inversion"`` (record) or ``"generation"`` (replay).
            t: the call's timestep.
        """
        if t not in self.timesteps:
            yield
            return
        make = self._record if phase == "inversion" else self._replay
        for name, block in self.blocks.items():
            block.attn_probs_hook = make(t, name)
        try:
            yield
        finally:
            for block in self.blocks.values():
                block.attn_probs_hook = None

    def close(self) -> None:
        """Drop the stored maps and make sure no hook is left on the backbone."""
        for block in self.blocks.values():
            block.attn_probs_hook = None
        self.maps.clear()

    def __enter__(self) -> "InjectionSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NoSession:
    """The session of a recipe without injection: every call runs unhooked."""

    def call(self, phase: str, t: int) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def __enter__(self) -> "_NoSession":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NO_INJECTION = _NoSession()


def open_session(injection: AttentionInjection | None, model: Any, inv: Sequence[int]) -> InjectionSession | _NoSession:
    """``injection.open(model, inv)``, or a do-nothing session when ``injection`` is None."""
    return NO_INJECTION if injection is None else injection.open(model, inv)
