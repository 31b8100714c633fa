r"""An example third-party invkit plugin: a cyclic finite difference that defines only ``A``.

Install it (``pip install -e examples/invkit-example-plugin``) and ``cyclic_diff`` appears in
``invkit.operators()``, in ``invkit operators`` and in invkit's property-test suite. Because
:class:`CyclicDiff` implements nothing but ``A``, invkit supplies the rest: ``AT`` by autograd
(a vector–Jacobian product) and ``pinv`` by conjugate gradients on the normal equations.

The entry module stays light (it imports no torch): invkit imports every plugin's entry module
to list its commands in ``invkit --help``, so the operator lives in
:mod:`invkit_example_plugin.ops`, imported by the hook when invkit first needs operators, and is
still importable from here (``from invkit_example_plugin import CyclicDiff``).
"""

from __future__ import annotations

from invkit import hookimpl
from invkit.plugins import lazy_attributes

__all__ = ["CyclicDiff"]

__getattr__ = lazy_attributes(__name__, {"CyclicDiff": ".ops"})


@hookimpl
def invkit_register_operators(register):  # type: ignore[no-untyped-def]
    from .ops import CyclicDiff, example  # imports torch: only when operators are first needed

    register(
        "cyclic_diff",
        CyclicDiff,
        description="cyclic finite difference along an axis (example plugin: defines only A)",
        example=example,
    )
