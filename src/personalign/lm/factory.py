"""``get_lm``: one call from a model spec string to a ready, cached :class:`LanguageModel`.

Spec strings:

* ``"qwen2.5-coder-0.5b"``, ``"smollm2-135m"`` – a bundled model (``transformers`` backend);
* ``"/path/model.gguf"`` or ``"/path/hf-folder"`` – a local model (``transformers`` backend);
* ``"openai:gpt-4o-mini"`` – ``<backend>:<model>`` for any registered backend;
* ``"simulated"`` – a backend name alone, for backends that need no model (``"simulated:NAME"``
  passes ``name=NAME``).

>>> from personalign.lm.factory import get_lm
>>> lm = get_lm("simulated", cache=False)          # doctest: +SKIP
>>> lm = get_lm("openai:gpt-4o-mini", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP

Backends are registered by name in :data:`BACKENDS` as lazy ``"module:attr"`` strings, so listing
them imports nothing heavy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from personalign.lm.base import LanguageModel
from personalign.lm.catalog import DEFAULT_MODEL
from personalign.registry import Registry

BACKENDS: Registry[Callable[..., LanguageModel]] = Registry("LM backend")
BACKENDS.register(
    "transformers",
    "personalign.lm.transformers:TransformersLM",
    help="local HF folder or GGUF file through transformers (CPU/GPU)",
)
BACKENDS.register(
    "openai",
    "personalign.lm.openai:OpenAILM",
    help="any OpenAI-compatible server (base URL, model name, key from the environment)",
)
BACKENDS.register(
    "simulated",
    "personalign.lm.simulated:SimulatedLM",
    help="deterministic simulated respondent for tests and demos",
)
BACKENDS.register(
    "simulated-optimizer",
    "personalign.lm.simulated:ScriptedOptimizerLM",
    help="deterministic scripted prompt optimizer that reacts to the mis-aligned answers it is shown",
)
BACKENDS.register(
    "llamacpp",
    "personalign.lm.llamacpp:LlamaCppLM",
    help="GGUF through llama-cpp-python (extra: pip install 'personalign[llamacpp]')",
)

_NO_MODEL_BACKENDS = frozenset({"simulated", "simulated-optimizer"})


def parse_spec(spec: str, backend: str | None = None) -> tuple[str, str | None]:
    """Split a spec into ``(backend, model)``; ``model`` is ``None`` for a bare backend name.

    An existing path is always a model for the given (or the ``transformers``) backend, so paths
    containing ``:`` are safe.
    """
    spec = str(spec)
    if os.path.exists(os.path.expanduser(spec)):
        return backend or "transformers", spec
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in BACKENDS:
        if backend is not None and backend != prefix:
            raise ValueError(
                f"model spec {spec!r} names backend {prefix!r} but backend={backend!r} was given"
            )
        return prefix, rest or None
    if not sep and spec in BACKENDS and spec in _NO_MODEL_BACKENDS and backend in (None, spec):
        return spec, None
    if backend is not None:
        BACKENDS.get(backend)  # unknown backend -> "unknown LM backend …; available: …"
    return backend or "transformers", spec


def get_lm(
    name_or_path: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    backend: str | None = None,
    cache: bool | str | os.PathLike[str] = True,
    **kwargs: Any,
) -> LanguageModel:
    """Build a language model from a spec (see module docstring), wrapped in the call cache.

    Args:
        name_or_path: model spec; defaults to the bundled default model.
        backend: force a backend (``transformers``, ``openai``, ``simulated``, ``llamacpp``).
        cache: ``True`` wraps the model in :class:`personalign.lm.cache.CachedLM` with its default
            file under the cache folder, a path uses that file, ``False`` disables caching.
        **kwargs: passed to the backend's constructor (``device=``, ``dtype=``, ``base_url=``…).
    """
    name, model = parse_spec(os.fspath(name_or_path), backend)
    factory = BACKENDS.get(name)
    if model is None:
        inner: LanguageModel = factory(**kwargs)
    elif name in _NO_MODEL_BACKENDS:  # "simulated:NAME" names the simulated model
        inner = factory(name=model, **kwargs)
    else:
        inner = factory(model, **kwargs)
    if cache is False or cache is None:
        return inner
    from personalign.lm.cache import CachedLM  # lazy: written separately, imported only when used

    path = None if cache is True else Path(cache)
    return CachedLM(inner, path=path)
