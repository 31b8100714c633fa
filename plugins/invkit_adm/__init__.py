"""guided-diffusion ADM UNet backbone plugin (ImageNet 64/128/256/512, LSUN, DPS FFHQ checkpoints).

Backbones registered (:mod:`invkit_adm.backbones`):

- ``adm``: the family, built from guided-diffusion's flag names with random weights (``seed=`` or
  ``generator=``) or from a ``checkpoint=``;
- ``adm-imagenet256-uncond``, ``adm-imagenet256-cond``, ``adm-imagenet128``, ``adm-imagenet64``,
  ``adm-imagenet512``, ``adm-lsun256``, ``adm-ffhq256``: the published checkpoints (a local file is
  required; nothing is downloaded).

ε is the first 3 output channels of the learned-sigma nets. Schedules are linear 1e-4..0.02,
T=1000, except the 64×64 model's cosine schedule. Class-conditional backbones take ``y=`` labels
(``model(x, t, y=labels)``), or use ``class_label=`` given when building.

This entry module stays light (no torch at import): ``invkit --help`` imports every plugin to
list its commands; the public names below are imported from their submodules on first use.
"""

from __future__ import annotations

from invkit import hookimpl
from invkit.plugins import lazy_attributes

__all__ = ["ADMUNet", "ADMBackbone", "PRESETS", "adm"]

__getattr__ = lazy_attributes(
    __name__, {"ADMUNet": ".model", "ADMBackbone": ".backbones", "PRESETS": ".backbones", "adm": ".backbones"}
)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


@hookimpl
def invkit_register_backbones(register):  # type: ignore[no-untyped-def]
    # the networks import torch: imported when backbones are first needed, not with the plugin
    from .backbones import register_all

    register_all(register)
