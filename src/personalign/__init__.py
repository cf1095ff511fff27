"""personalign: personalize LLMs to individual users from a few examples.

The public API, imported lazily so ``import personalign`` stays cheap::

    import personalign as pa

    users = pa.load_dataset("opinionqa-users")            # a UserBase
    split = pa.split_user(users.users[0], users.questions, k=15)
    lm = pa.get_lm("qwen2.5-coder-0.5b")                   # bundled offline model, cached calls
    fermi = pa.FermiPersonalizer(lm, embedder=pa.get_embedder("minilm")).fit(split.for_training())
    answers = fermi.predict(split.test_questions)

    result = pa.evaluate("opinionqa-users", ["zero-shot", "profile", "fermi"], users=5)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "get_lm": "personalign.lm.factory",
    "get_embedder": "personalign.embed.factory",
    "load_dataset": "personalign.data",
    "load_preference_pairs": "personalign.data",
    "split_user": "personalign.data",
    "split_users": "personalign.data",
    "UserBase": "personalign.data",
    "UserSplit": "personalign.data",
    "FermiPersonalizer": "personalign.fermi.personalizer",
    "FermiConfig": "personalign.fermi.config",
    "get_method": "personalign.methods",
    "METHODS": "personalign.methods",
    "MethodContext": "personalign.methods",
    "evaluate": "personalign.eval.runner",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'personalign' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
