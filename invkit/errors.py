"""invkit's typed errors.

Every error a user can trigger by passing bad input derives from :class:`InvkitError`, so a
caller (and the CLI) can catch one class. Each message says what was wrong and what to do.
The concrete classes also derive from the matching built-in (``ValueError``, ``TypeError``,
``FileNotFoundError``, ``KeyError``) so ordinary ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class InvkitError(Exception):
    """Base class of every error invkit raises on purpose."""


class InvalidInputError(InvkitError, ValueError):
    """A tensor or parameter has the wrong shape, dtype, range or value."""


class InvalidDTypeError(InvkitError, TypeError):
    """A tensor has a dtype invkit cannot work with (e.g. an integer image)."""


class ConfigError(InvkitError, ValueError):
    """A part (recipe, inverter, guidance, noise) was built with inconsistent settings."""


class UnknownNameError(InvkitError, KeyError):
    """A name (operator, backbone, recipe) is not registered."""

    def __str__(self) -> str:  # KeyError would print the repr with quotes
        return str(self.args[0]) if self.args else ""


class PluginError(InvkitError, RuntimeError):
    """A plugin failed to load or registered something invalid (e.g. a duplicate name)."""


class CheckpointError(InvkitError, RuntimeError):
    """A checkpoint is missing, unsafe, or does not match the architecture it is loaded into."""


class MissingFileError(InvkitError, FileNotFoundError):
    """A file invkit needs (checkpoint, dataset, weights) is not there; the message says where to get it."""


class CapabilityError(ConfigError):
    """A part needs an operator or backbone capability that is missing (e.g. an SVD view)."""


class PluginWarning(UserWarning):
    """A plugin failed to load or registered something invalid; invkit carries on without it.

    ``INVKIT_STRICT_PLUGINS=1`` turns every such warning into a :class:`PluginError`.
    """
