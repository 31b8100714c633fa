"""A griffe extension for invkit's API reference (used by mkdocs.yml, not by the package).

The reference is built by importing the modules (``force_inspection``), because the parts are
attrs classes whose ``__init__`` exists only at run time. Inspection gives a plain class attribute
(``needs_grad = False``, ``cg_maxiter = 2000``) the docstring of its value's *type* (``bool``,
``int``); such attributes are documented in their class's ``Attributes:`` section instead, so
their borrowed docstring is dropped here.
"""

from __future__ import annotations

import inspect
from typing import Any

import griffe


class DropBorrowedDocstrings(griffe.Extension):
    """Forget an attribute's docstring when it is just the docstring of the value's type."""

    def on_attribute_instance(self, *, node: Any, attr: griffe.Attribute, **kwargs: Any) -> None:
        if attr.docstring is None or getattr(node, "obj", None) is None:
            return
        borrowed = getattr(type(node.obj), "__doc__", None)
        if isinstance(borrowed, str) and attr.docstring.value == inspect.cleandoc(borrowed):
            attr.docstring = None
