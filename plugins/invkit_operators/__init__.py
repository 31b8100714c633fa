r"""Built-in operators plugin: super-resolution, colorization, inpainting, blur, denoising, dense
matrices and a composition, each with an exact pseudo-inverse.

Every operator is registered with an ``example(rng)`` that builds it with random valid parameters
(``rng`` is a :class:`numpy.random.Generator`) and returns ``(operator, in_shape)``; the property
tests in ``tests/operators`` run on these. See ``docs/operators.md`` for the catalogue
(:mod:`invkit_operators.catalogue`).

This entry module stays light (no torch at import): ``invkit --help`` imports every plugin to
list its commands; the public names below are imported from their submodules on first use.
"""

from __future__ import annotations

from invkit import hookimpl
from invkit.plugins import lazy_attributes

__all__ = [
    "BlurFFT",
    "Colorization",
    "DeblurGauss",
    "DeblurGaussDDRM",
    "Denoise",
    "Inpainting",
    "Matrix",
    "SRAvgPool",
    "SRBicubic",
    "box_mask",
    "colorization_sr",
    "random_pixel_mask",
]

__getattr__ = lazy_attributes(__name__, {
    **dict.fromkeys(("Denoise", "Matrix"), ".basic"),
    **dict.fromkeys(("BlurFFT", "DeblurGauss", "DeblurGaussDDRM"), ".blur"),
    **dict.fromkeys(("Colorization", "DDRM_GRAY_WEIGHTS"), ".color"),
    **dict.fromkeys(("Inpainting", "box_mask", "random_pixel_mask"), ".inpaint"),
    **dict.fromkeys(("SRAvgPool", "SRBicubic"), ".sr"),
    **dict.fromkeys(("colorization_sr", "BUILTIN"), ".catalogue"),
})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


@hookimpl
def invkit_register_operators(register):  # type: ignore[no-untyped-def]
    # the operators import torch: imported when operators are first needed, not with the plugin
    from .catalogue import register_all

    register_all(register)
