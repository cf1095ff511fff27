"""Fermi: few-shot personalization of LLMs with mis-aligned responses (Kim & Yang, NAACL 2025).

Public API: :class:`FermiConfig`, :class:`FermiPersonalizer`, :func:`optimize` and
:class:`UserTask` (the loop itself), :class:`FermiState`. Baselines and the registered method
names (``fermi``, ``fermi-no-rop``, ``fermi+``, ``opro``, ``opro-rop``) are in
:mod:`personalign.methods`.
"""

from personalign.fermi.config import FermiConfig
from personalign.fermi.loop import UserTask, optimize
from personalign.fermi.personalizer import FermiPersonalizer
from personalign.fermi.state import FermiState, StateMismatchError

__all__ = ["FermiConfig", "FermiPersonalizer", "FermiState", "StateMismatchError", "UserTask", "optimize"]
