"""Method factories for the Fermi family, registered in :data:`personalign.methods.registry.METHODS`.

Each method fixes the fields that define it and takes everything else from
``MethodContext.options``: ``config`` (a named config: ``default``, ``faithful``, ``small_model``),
any :class:`~personalign.fermi.config.FermiConfig` field (``T``, ``K``, ``L``, …) and ``force``.

| method | show_failures | use_rop | insert_opinions | default named config |
|---|---|---|---|---|
| ``opro`` | off | off | off | ``default`` |
| ``opro-rop`` | off | on | off | ``default`` |
| ``fermi-no-rop`` | on | off | off | ``default`` |
| ``fermi`` | on | on | off | ``default`` |
| ``fermi+`` | on | on | **on** (Ext) | ``small_model`` |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from personalign.fermi.config import FermiConfig
from personalign.fermi.personalizer import FermiPersonalizer
from personalign.methods.registry import MethodContext

#: Option keys meant for other methods (ignored here, so one options mapping can serve a run).
FOREIGN_OPTIONS = frozenset({"k"})

METHOD_FIELDS: dict[str, dict[str, Any]] = {
    "opro": {"show_failures": False, "use_rop": False, "insert_opinions": False},
    "opro-rop": {"show_failures": False, "use_rop": True, "insert_opinions": False},
    "fermi-no-rop": {"show_failures": True, "use_rop": False, "insert_opinions": False},
    "fermi": {"show_failures": True, "use_rop": True, "insert_opinions": False},
    "fermi+": {"show_failures": True, "use_rop": True, "insert_opinions": True},
}
DEFAULT_CONFIG = {"fermi+": "small_model"}


def method_config(method: str, options: Mapping[str, Any]) -> FermiConfig:
    """The :class:`FermiConfig` that ``method`` runs with under ``options``."""
    if method not in METHOD_FIELDS:
        raise ValueError(f"unknown Fermi-family method {method!r}; available: {', '.join(METHOD_FIELDS)}")
    valid = {f.name for f in fields(FermiConfig)} - {"name"}
    overrides = {k: v for k, v in options.items() if k in valid}
    unknown = sorted(set(options) - valid - {"config", "force"} - FOREIGN_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown option(s) for {method}: {', '.join(unknown)}; "
            f"valid: config, force, {', '.join(sorted(valid))}"
        )
    name = str(options.get("config", DEFAULT_CONFIG.get(method, "default")))
    return FermiConfig.named(name, **{**overrides, **METHOD_FIELDS[method]})


def _factory(method: str):
    def make(context: MethodContext) -> FermiPersonalizer:
        if context.answer_lm is None:
            raise ValueError(f"method {method!r} needs an answering LM")
        return FermiPersonalizer(
            answer_lm=context.answer_lm,
            optimizer_lm=context.optimizer_lm,
            embedder=context.embedder,
            config=method_config(method, context.options),
            seed=context.seed,
            workdir=context.workdir,
            force=bool(context.options.get("force", False)),
        )

    make.__name__ = "make_" + method.replace("-", "_").replace("+", "_plus")
    make.__doc__ = f"Build a {method} personalizer from a MethodContext."
    return make


make_opro = _factory("opro")
make_opro_rop = _factory("opro-rop")
make_fermi_no_rop = _factory("fermi-no-rop")
make_fermi = _factory("fermi")
make_fermi_plus = _factory("fermi+")
