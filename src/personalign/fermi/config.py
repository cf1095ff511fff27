"""`FermiConfig`: every setting of the Fermi loop, Retrieval-of-Prompt and the Ext generators.

Provenance of the defaults follows the spec (``../shared/specs/fermi.md``): *Ref-R* values come
from a third-party reimplementation, *Default* values are ours, *Ext* marks our extensions. The
paper's own values are unknown.

Named configs (:meth:`FermiConfig.named`): ``default`` (the spec's Default column), ``faithful``
(no Ext at all: no soft tie-break, no extra candidate generators) and ``small_model`` (``K = 8``,
one sampled call per candidate with a pre-filled ``<prompt>You are``, Ext ``insert_opinions`` on).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

CONFIG_NAMES = ("default", "faithful", "small_model")


@dataclass(frozen=True)
class FermiConfig:
    """Settings of one Fermi run. Its :meth:`config_hash` is written into every output.

    Attributes:
        name: the named config this came from (informational; part of the hash).
        T: scoring rounds; round 1 scores the seed prompts (Ref-R 10).
        K: new candidate prompts requested per round (Ref-R 4; 8 for small models).
        L: memory size, the top-L scored prompts kept (Ref-R 5).
        n_neighbors: Retrieval-of-Prompt neighbours Ñ, clamped to ``[1, |train|]`` (Ref-R 3).
        use_soft: break accuracy ties by the mean gold log-probability ``soft`` (Default, an Ext);
            ``False`` gives the faithful key ``(acc, -birth)``.
        show_failures: show the mis-aligned contexts ("Answers it got wrong") in the meta-prompt.
            ``False`` turns Fermi into OPRO (prompt and score only).
        use_rop: answer with Retrieval-of-Prompt; ``False`` answers every question with the single
            best prompt of the pool by the sort key (``fermi-no-rop``, ``opro``).
        m_max: at most this many failure lines per memory entry in the meta-prompt.
        meta_budget: token budget ``B_meta`` of the "previous prompts" section (the answering
            model's tokenizer counts).
        question_max_chars: questions in failure lines are cut at this many characters.
        max_words: ``W``, the most words a candidate prompt may have.
        min_words: the fewest words a candidate prompt may have.
        retries: ``R``, extra optimizer calls allowed per missing candidate.
        temperature: optimizer sampling temperature (Ref-R 1.0).
        top_p: optimizer nucleus sampling (Ref-R 0.95).
        max_new_tokens: optimizer generation limit per call (Default 160 per requested prompt in
            the one-call mode, see ``small_model_mode``).
        small_model_mode: make ``K`` separate sampled calls, each asking for one prompt, with the
            assistant turn pre-filled with ``prefill`` (Default for models under 2B).
        prefill: what the assistant turn starts with in small-model mode.
        early_stop: stop when the best ``acc`` is 1.0 or the best key has not improved for
            ``patience`` rounds (Default; Ref-R has none).
        patience: rounds without improvement before early stop.
        seeds: which seed prompts to start from: ``"profile"`` (S1) and/or ``"neutral"`` (S2).
        insert_opinions: Ext generator adding up to 3 candidates per round that state the user's
            own training opinions (scored leave-one-out). Any run with it on is ``fermi+``.
        insert_k: how many retrieved opinions the Ext retrieval slot shows per question.
    """

    name: str = "default"
    T: int = 10
    K: int = 4
    L: int = 5
    n_neighbors: int = 3
    use_soft: bool = True
    show_failures: bool = True
    use_rop: bool = True
    m_max: int = 5
    meta_budget: int = 1500
    question_max_chars: int = 300
    max_words: int = 120
    min_words: int = 5
    retries: int = 2
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 160
    small_model_mode: bool = False
    prefill: str = "<prompt>You are"
    early_stop: bool = True
    patience: int = 3
    seeds: tuple[str, ...] = ("profile", "neutral")
    insert_opinions: bool = False
    insert_k: int = 5

    def __post_init__(self) -> None:
        checks = {
            "T": self.T >= 1,
            "K": self.K >= 1,
            "L": self.L >= 1,
            "n_neighbors": self.n_neighbors >= 1,
            "m_max": self.m_max >= 0,
            "meta_budget": self.meta_budget >= 1,
            "question_max_chars": self.question_max_chars >= 1,
            "min_words": 1 <= self.min_words <= self.max_words,
            "retries": self.retries >= 0,
            "temperature": self.temperature >= 0,
            "top_p": 0 < self.top_p <= 1,
            "max_new_tokens": self.max_new_tokens >= 1,
            "patience": self.patience >= 1,
            "insert_k": self.insert_k >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid FermiConfig value for {', '.join(bad)}: {self.to_dict()}")
        unknown = [s for s in self.seeds if s not in ("profile", "neutral")]
        if unknown or not self.seeds:
            raise ValueError(
                f"FermiConfig.seeds must be a non-empty subset of profile, neutral; got {self.seeds}"
            )

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def named(cls, name: str = "default", **overrides: Any) -> FermiConfig:
        """The named config ``default``, ``faithful`` or ``small_model`` with ``overrides``."""
        presets: dict[str, dict[str, Any]] = {
            "default": {},
            "faithful": {"use_soft": False, "insert_opinions": False},
            "small_model": {"K": 8, "small_model_mode": True, "insert_opinions": True},
        }
        if name not in presets:
            raise ValueError(f"unknown Fermi config {name!r}; available: {', '.join(CONFIG_NAMES)}")
        return cls.from_dict({**presets[name], **overrides, "name": name})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FermiConfig:
        """Build from a mapping, refusing unknown keys with the list of valid ones."""
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ValueError(
                f"unknown FermiConfig field(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}"
            )
        data = dict(data)
        if "seeds" in data:
            data["seeds"] = tuple(data["seeds"])
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> FermiConfig:
        """A copy with some fields changed (validated)."""
        return replace(self, **overrides)

    # -- identity ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    def config_hash(self) -> str:
        """sha256 (first 16 hex digits) of the canonical JSON of all fields."""
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    @property
    def uses_ext(self) -> bool:
        """Whether an Ext candidate generator is on (results are then reported as ``fermi+``)."""
        return self.insert_opinions
