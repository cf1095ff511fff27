"""Stable per-draw seeds: ``sha256(global_seed, task, user_id, purpose, round, slot)`` (spec §8).

Never Python's salted ``hash()``: seeds must be identical across processes and runs, and must not
depend on the worker count or the order users are processed in.
"""

from __future__ import annotations

import hashlib


def derive_seed(
    global_seed: int, task: str, user_id: str, purpose: str, round: int = 0, slot: int = 0
) -> int:
    """A 63-bit seed from the sha256 of the fields joined with an ASCII unit separator."""
    fields = [str(global_seed), task, user_id, purpose, str(round), str(slot)]
    digest = hashlib.sha256("\x1f".join(fields).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1
