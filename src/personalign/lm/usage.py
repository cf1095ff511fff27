"""Usage accounting: calls, tokens, seconds and cache hits for a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class Usage:
    """Counters accumulated by a language model (or a cache wrapping one).

    ``calls`` counts requests that reached the backend; ``cache_hits`` counts requests answered by
    the cache without calling the backend. ``seconds`` is backend wall-clock time.
    """

    calls: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0

    def add(self, other: Usage) -> Usage:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def copy(self) -> Usage:
        return Usage(**asdict(self))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)
