"""Errors raised by the NP-BTL layer. All are ``ValueError`` subclasses with a message that says
what was expected and what was received."""

from __future__ import annotations


class NPInputError(ValueError):
    """Bad input to an NP-BTL model, state, episode source or file."""


class EmptyPairsError(NPInputError):
    """A collection of pairs (or responses) that must not be empty was empty."""


class NonFiniteFeaturesError(NPInputError):
    """Features contain NaN or infinite values."""


class FeatureDimensionError(NPInputError):
    """Features have the wrong shape or feature dimension."""


class CheckpointError(NPInputError):
    """A model folder or training checkpoint is missing, incomplete or inconsistent."""
