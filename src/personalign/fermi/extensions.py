"""Ext ``insert_opinions``: candidate prompts that state the user's own training opinions.

Not part of Fermi (spec §7, Ext); on only when ``FermiConfig.insert_opinions`` is set, and any run
with it is reported as ``fermi+``. Small offline models follow *stated* opinions better than they
infer them from a persona. Each round adds up to three candidates built on the best prompt without
slots (the optimizer, too, is shown only slot-free prompts, so Ext never changes the Fermi
trajectory; Ext prompts compete for the final pool and Retrieval-of-Prompt):

1. the prompt + "You previously answered:" + the training opinions it got wrong;
2. the prompt + all training opinions;
3. the prompt + a retrieval slot: the ``insert_k`` training opinions most similar to each question.

The opinions are structured slots (:class:`~personalign.fermi.prompts.PromptSpec`), rendered
leave-one-out while scoring so the training score never sees the answer it is scored on.
"""

from __future__ import annotations

from collections.abc import Container

from personalign.fermi.config import FermiConfig
from personalign.fermi.memory import ScoredPrompt
from personalign.fermi.prompts import PromptSpec


def insert_opinions_candidates(
    best: ScoredPrompt, n_train: int, config: FermiConfig, seen_keys: Container[str], can_retrieve: bool
) -> list[PromptSpec]:
    """Up to three Ext candidates derived from ``best`` (those not already archived)."""
    base = best.spec.text
    specs: list[PromptSpec] = []
    wrong = tuple(m.index for m in best.misaligned)
    if wrong:
        specs.append(PromptSpec(base, origin="ext:misaligned", opinions=wrong))
    specs.append(PromptSpec(base, origin="ext:all", opinions=tuple(range(n_train))))
    if can_retrieve:
        specs.append(PromptSpec(base, origin="ext:retrieval", retrieval_k=config.insert_k))
    out, keys = [], set()
    for spec in specs:
        if spec.key not in seen_keys and spec.key not in keys:
            out.append(spec)
            keys.add(spec.key)
    return out
