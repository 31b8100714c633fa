"""Safe, strict checkpoint loading.

- :func:`load_state_dict` reads ``.safetensors`` files, or ``.pt``/``.ckpt``/``.pth`` files with
  ``torch.load(weights_only=True)``: a pickle that would build anything other than tensors and
  plain containers is refused **before** any of its code runs. A ``module.`` prefix (saved from
  ``DataParallel``/DDP, as SSD's trainer does) is stripped; a ``{"state_dict": ...}`` or
  ``{"model": ...}`` wrapper is unwrapped.
- :func:`save_state_dict` writes safetensors.
- :func:`load_strict` loads into a module only when keys and shapes match exactly; otherwise a
  :class:`~invkit.errors.CheckpointError` names the preset, the first differing keys on each side
  and the likely cause (class-conditional vs unconditional, learned sigma, wrong family, diffusers
  naming).

:func:`backbone_from_export` rebuilds the backbone an ``invkit train --export`` describes: the
``.json`` next to the weights names it by registered backbone name (older exports by a class path,
matched against the ``arch_aliases`` a backbone registers).

:func:`build_net` is what the backbone plugins share: build a net on the ``meta`` device (no
memory, no random draws), then give it the checkpoint's tensors, or random weights drawn from a
caller's generator, or nothing at all (``device="meta"``, to inspect the architecture).

Nothing here downloads anything.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import nn

from .errors import CheckpointError, ConfigError, MissingFileError
from .io import write_atomic

__all__ = [
    "load_state_dict",
    "save_state_dict",
    "write_atomic",
    "load_strict",
    "check_state_dict",
    "strip_prefix",
    "resolve_dtype",
    "init_random",
    "build_net",
    "backbone_from_export",
]

_PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin"}
_WRAPPERS = ("state_dict", "model")
_SHOW = 5


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """``state`` with ``prefix`` removed, when every key carries it (else unchanged)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # {"state_dict": {"model": {...}}} is the deepest nesting seen in the wild
        if isinstance(obj, Mapping) and obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[w] for w in _WRAPPERS if isinstance(obj.get(w), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{path}: expected a state_dict (a mapping of parameter names to tensors), got "
            f"{type(obj).__name__}; save the model's state_dict(), not the model or a training state"
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path}: entries {bad[:_SHOW]} are not tensors; save only model.state_dict() "
            f"(optimizer states and training counters do not belong in a weights file)"
        )
    return dict(obj)


def load_state_dict(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a weights file without running any code from it.

    ``.safetensors`` is read with :mod:`safetensors`; ``.pt``/``.pth``/``.ckpt``/``.bin`` with
    ``torch.load(weights_only=True)``, whose restricted unpickler refuses every global that is not
    a tensor type or plain container, so a ``__reduce__`` payload never executes.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingFileError(f"checkpoint file {str(p)!r} does not exist (or is not a file); check the path")
    suffix = p.suffix.lower()
    if suffix == ".json":
        raise CheckpointError(
            f"{p}: a .json file holds no weights (invkit writes the config next to the weights); pass the "
            f".safetensors file with the same name"
        )
    if suffix not in _PICKLE_SUFFIXES and suffix != ".safetensors":
        raise CheckpointError(
            f"{p}: unknown checkpoint format {suffix!r}; use .safetensors or a torch file "
            f"({', '.join(sorted(_PICKLE_SUFFIXES))})"
        )
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: the file is empty (an interrupted download or copy?); fetch it again")
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(p), device=str(device))
        except Exception as exc:  # SafetensorError, OSError, ValueError, ...: all mean "unreadable"
            raise CheckpointError(f"{p}: not a readable safetensors file ({_one_line(exc)}); it may be truncated or corrupt") from None
    else:
        try:
            state = torch.load(str(p), map_location=device, weights_only=True)
        except pickle.UnpicklingError as exc:
            if "global" not in str(exc).lower():  # random bytes, not a refused class or function
                raise CheckpointError(
                    f"{p}: not a readable PyTorch checkpoint (its pickle stream is corrupt); it may be truncated or not a torch file"
                ) from None
            raise CheckpointError(
                f"{p}: refused to load: the file holds pickled objects other than tensors, and "
                f"unpickling them could run arbitrary code. If you trust the file, re-save its "
                f"state_dict as .safetensors (invkit.checkpoint.save_state_dict). Detail: {_one_line(exc)}"
            ) from None
        except Exception as exc:  # truncated zip, text, random bytes: torch raises many types here
            raise CheckpointError(
                f"{p}: not a readable PyTorch checkpoint ({type(exc).__name__}: {_one_line(exc)}); it may be truncated or corrupt"
            ) from None
    return strip_prefix(_unwrap(state, p))


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] + ("…" if len(text) > limit else "")


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike, *, metadata: Mapping[str, str] | None = None) -> None:
    """Write ``state`` as safetensors (tensors made contiguous, on CPU; shared storage copied)."""
    from safetensors.torch import save_file

    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"cannot save {k!r}: a {type(v).__name__}, not a tensor")
        t = v.detach().to("cpu").contiguous()
        # safetensors refuses two names over one storage (tied weights): give each its own copy
        if t.untyped_storage().data_ptr() in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    write_atomic(Path(path).expanduser(), lambda tmp: save_file(out, str(tmp), metadata=dict(metadata) if metadata else None))


def _likely_cause(missing: list[str], unexpected: list[str], shapes: list[tuple[str, tuple, tuple]]) -> str:
    causes = []
    if "label_emb.weight" in unexpected:
        causes.append(
            "the checkpoint is class-conditional (it has label_emb): use the class-conditional preset "
            "(e.g. adm-imagenet256-cond / class_cond=True)"
        )
    if "label_emb.weight" in missing:
        causes.append(
            "the checkpoint is unconditional (no label_emb; e.g. 256x256_diffusion_uncond.pt): use "
            "the unconditional preset (adm-imagenet256-uncond / class_cond=False)"
        )
    for key, want, got in shapes:
        if key.startswith("out.") and key.endswith("weight") and len(want) == 4 and {want[0], got[0]} == {3, 6}:
            causes.append(
                f"output channels differ ({got[0]} in the file, {want[0]} in the net): learn_sigma "
                f"checkpoints have 6 (ε and the variance), plain ones 3; set learn_sigma accordingly"
            )
            break
    keys = missing + unexpected
    if any(k.startswith(("down_blocks.", "up_blocks.", "mid_block.")) for k in unexpected):
        causes.append(
            "the file uses diffusers naming: load the folder with invkit.backbone('diffusers', path=...) "
            "or convert with invkit_ddpm.diffusers_interop.from_diffusers"
        )
    has_adm = any(k.startswith(("input_blocks.", "output_blocks.", "middle_block.")) for k in unexpected)
    has_ddpm = any(k.startswith(("down.", "up.", "mid.", "temb.")) for k in unexpected)
    if has_adm and any(k.startswith(("down.", "up.")) for k in missing):
        causes.append("this is a guided-diffusion (ADM) checkpoint: use an adm-* preset")
    if has_ddpm and any(k.startswith(("input_blocks.", "output_blocks.")) for k in missing):
        causes.append("this is a ddim-repo DDPM checkpoint: use a ddpm-* preset")
    if shapes and not causes:
        causes.append("the architecture settings (channels, channel_mult, res blocks, heads) differ from the file's")
    if not causes and keys:
        causes.append("a different architecture (e.g. another channel_mult, attention resolutions or res-block count)")
    return "; ".join(causes)


def check_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], *, preset: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly ``module``'s keys and shapes."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(own[k].shape), tuple(state[k].shape)) for k in own if k in state and own[k].shape != state[k].shape]
    if not (missing or unexpected or shapes):
        return
    parts = [f"checkpoint does not match backbone {preset!r}"]
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:_SHOW])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:_SHOW])})")
    if shapes:
        shown = ", ".join(f"{k}: net {w} vs file {g}" for k, w, g in shapes[:_SHOW])
        parts.append(f"{len(shapes)} shape mismatches ({shown})")
    parts.append(f"likely cause: {_likely_cause(missing, unexpected, shapes)}")
    raise CheckpointError("; ".join(parts))


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, preset: str) -> nn.Module:
    """Load ``state_dict`` into ``module`` after :func:`check_state_dict`; returns ``module``.

    A module on the ``meta`` device takes the checkpoint's tensors as its parameters (no second
    copy is allocated); otherwise values are copied into the existing parameters.
    """
    check_state_dict(module, state_dict, preset=preset)
    is_meta = any(p.is_meta for p in module.parameters())
    module.load_state_dict(dict(state_dict), strict=True, assign=is_meta)
    return module


_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float64": torch.float64, "fp64": torch.float64, "double": torch.float64,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def resolve_dtype(dtype: torch.dtype | str | None) -> tuple[torch.dtype, torch.dtype | None]:
    """``dtype`` → (weights dtype, autocast dtype).

    ``float32``/``float64`` (or ``None`` = float32) set the weights' dtype and run without autocast;
    ``bfloat16``/``float16`` keep float32 weights and run the net under :func:`torch.autocast`
    (as guided-diffusion's ``use_fp16`` keeps float32 master weights), so the solver's arithmetic
    stays in the input's dtype.
    """
    if dtype is None:
        return torch.float32, None
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(_DTYPES))}")
        dtype = _DTYPES[dtype.lower()]
    if dtype in (torch.float32, torch.float64):
        return dtype, None
    if dtype in (torch.bfloat16, torch.float16):
        return torch.float32, dtype
    raise ConfigError(f"dtype {dtype} is not supported; use float32, float64, bfloat16 or float16")


@torch.no_grad()
def init_random(module: nn.Module, generator: torch.Generator) -> nn.Module:
    r"""Fill every parameter of ``module`` from ``generator`` (no global RNG).

    Conv/Linear weights and biases ~ U(−1/√fan_in, 1/√fan_in) (PyTorch's default bound), norms
    weight 1 and bias 0, embeddings N(0, 1). Layers the reference code zero-initialises are drawn
    too, so a random net gives non-trivial outputs for tests and timings. Parameters must live on
    ``generator``'s device.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            bound = 1.0 / fan_in**0.5
            for p in (m.weight, m.bias):
                if p is not None:
                    p.copy_(torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype) * (2 * bound) - bound)
        elif isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()
        elif isinstance(m, nn.Embedding):
            m.weight.copy_(torch.randn(m.weight.shape, generator=generator, device=m.weight.device, dtype=m.weight.dtype))
    return module


def missing_checkpoint_message(name: str, checkpoint: str, source: str, url: str) -> str:
    """The "where to get it" message of a named preset built without its weights file."""
    return (
        f"backbone {name!r} needs its weights file {checkpoint!r} ({source}): download it from {url} and "
        f"pass checkpoint='path/to/{checkpoint}'. invkit downloads nothing. For random weights pass "
        f"seed=0; to inspect the architecture without weights pass device='meta'"
    )


def build_net(
    make: Callable[[], nn.Module],
    *,
    preset: str,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    missing: str | None = None,
    channels_last: bool = False,
    compile: bool = False,
) -> tuple[nn.Module, torch.dtype | None]:
    """Build ``make()`` and give it weights; returns ``(net, autocast dtype)``.

    - ``checkpoint``: strict load from a local file (:func:`load_state_dict` + :func:`load_strict`);
    - else ``generator`` or ``seed``: :func:`init_random` (on the generator's device; ``seed`` makes a
      generator on ``device``);
    - else ``device="meta"``: the architecture without weights;
    - else, when ``missing`` is given (a named preset), :class:`MissingFileError` with that text;
      otherwise random weights from seed 0.

    ``channels_last`` stores 4-D weights channels-last; ``compile`` compiles the module in place
    (``nn.Module.compile``: ``state_dict`` keys are unchanged).
    """
    weights_dtype, autocast = resolve_dtype(dtype)
    device = torch.device(device)
    with torch.device("meta"):
        net = make()
    if checkpoint is not None:
        if device.type == "meta":
            raise ConfigError(f"{preset}: device='meta' builds without weights; drop checkpoint= or pick a real device")
        load_strict(net, load_state_dict(checkpoint), preset=preset)
        net = net.to(device=device, dtype=weights_dtype)
    elif device.type == "meta":
        net = net.to(dtype=weights_dtype)
    else:
        if generator is None and seed is None and missing is not None:
            raise MissingFileError(missing)
        if generator is None:
            generator = torch.Generator(device).manual_seed(0 if seed is None else int(seed))
        elif seed is not None:
            raise ConfigError(f"{preset}: pass generator= or seed=, not both")
        # drawn in float32 then cast, so one seed gives the same net in float32 and float64
        net = net.to_empty(device=generator.device).to(dtype=torch.float32)
        init_random(net, generator)
        net = net.to(device=device, dtype=weights_dtype)
    net.eval()
    if channels_last and device.type != "meta":
        net = net.to(memory_format=torch.channels_last)
    if compile:
        net.compile()
    return net, autocast


def _backbone_name(meta: Mapping[str, object], where: Path) -> str:
    """The registered backbone an export's config names: ``"backbone"``, or an older ``"arch"``
    class path matched against the ``arch_aliases`` that backbones register."""
    from .plugins import backbones_registry

    name = meta.get("backbone")
    if isinstance(name, str):
        return name
    arch = meta.get("arch")
    if isinstance(arch, str):
        for spec_name, spec in backbones_registry.specs().items():
            if arch in (spec.meta.get("arch_aliases") or ()):
                return spec_name
        raise CheckpointError(
            f"{where}: architecture {arch!r} is not known to any loaded backbone plugin (see `invkit backbones`)"
        )
    raise CheckpointError(f"{where}: names no backbone (no 'backbone' or 'arch' key); is it a config written by invkit?")


def backbone_from_export(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None
):
    """The backbone an export of ``invkit train`` describes: weights ``path`` and config ``path.json``.

    The config names the architecture by its registered backbone name (``"backbone": "ddpm"``) and
    holds the network's keyword arguments (``"model"``); configs written before that named a class
    path (``"arch": "invkit_ddpm.model.DDPMUNet"``), which the backbone's ``arch_aliases`` resolve.

    Args:
        path: the ``.safetensors`` weights; the config is the ``.json`` file with the same stem.
        device: where to build the network.
        dtype: weights/autocast dtype (see :func:`resolve_dtype`).

    Raises:
        MissingFileError: the weights or the config is missing.
        CheckpointError: the config is unreadable or names an unknown architecture, or the weights do
            not match it.
    """
    import json

    from .plugins import backbones_registry

    p = Path(path).expanduser()
    config = p.with_suffix(".json")
    if not p.is_file():
        raise MissingFileError(f"no weights file at {p}")
    if not config.is_file():
        raise MissingFileError(f"no config next to {p} (expected {config}, written by `invkit train --export`)")
    try:
        meta = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config}: not a readable JSON config ({_one_line(exc)})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{config}: expected a JSON object with the network's settings under 'model'")
    name = _backbone_name(meta, config)
    try:
        return backbones_registry.build(name, checkpoint=p, device=device, dtype=dtype, **meta["model"])
    except ConfigError as exc:
        raise CheckpointError(f"{config}: its 'model' settings do not fit backbone {name!r}: {exc}") from None
