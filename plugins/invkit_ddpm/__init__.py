"""ddim-repo DDPM UNet backbone plugin (CelebA-HQ, LSUN, CIFAR-10 checkpoints), the diffusers
adapter, and the ``invkit train`` command.

Backbones registered (:mod:`invkit_ddpm.backbones`):

- ``ddpm``: the family, built from the ddim config names with random weights (``seed=`` or
  ``generator=``) or from a ``checkpoint=``;
- ``ddpm-celebahq256``, ``ddpm-lsun-church256``, ``ddpm-lsun-bedroom256``, ``ddpm-lsun-cat256``,
  ``ddpm-cifar10-32``: the published checkpoints (a local file is required; nothing is downloaded);
- ``diffusers``: a local diffusers ``UNet2DModel`` folder (needs the ``diffusers`` extra).

Every one is a :class:`invkit.NetBackbone` over a linear schedule 1e-4..0.02, T=1000;
``backbone.net`` is the module whose ``state_dict`` has the checkpoint's keys.

Command registered: ``invkit train`` (:mod:`invkit_ddpm.train`), the DDPM trainer.

This entry module stays light (no torch at import): ``invkit --help`` imports every plugin to
list its commands; the public names below are imported from their submodules on first use.
"""

from __future__ import annotations

from invkit import hookimpl
from invkit.plugins import lazy_attributes

__all__ = ["DDPMUNet", "PRESETS", "ddpm"]

__getattr__ = lazy_attributes(__name__, {"DDPMUNet": ".model", "PRESETS": ".backbones", "ddpm": ".backbones"})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


@hookimpl
def invkit_register_backbones(register):  # type: ignore[no-untyped-def]
    # the networks import torch: imported when backbones are first needed, not with the plugin
    from .backbones import register_all

    register_all(register)


@hookimpl
def invkit_register_commands(register):  # type: ignore[no-untyped-def]
    register("train", "invkit_ddpm.train", help="train a DDPM backbone on Fashion-MNIST (resumable)")
