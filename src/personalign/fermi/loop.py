"""The Fermi optimization loop (spec §3): resumable, logged, one user at a time.

:func:`optimize` sees one :class:`UserTask` (profile and training opinions of one user, nothing
else), so no other user's data can enter its prompts, meta-prompts or memory. With a ``workdir``
it writes ``state.json`` (atomically) and appends ``rounds.jsonl`` after every round; calling it
again continues from the last complete round and returns a finished state without any LM call.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalign.data.types import LabeledQuestion, Profile, UserSplit
from personalign.embed.base import Embedder
from personalign.fermi.candidates import CandidateOutcome, parse_candidates, validate_candidate
from personalign.fermi.config import FermiConfig
from personalign.fermi.extensions import insert_opinions_candidates
from personalign.fermi.memory import ScoredPrompt, sort_key, update_memory
from personalign.fermi.meta_prompt import build_meta_prompt
from personalign.fermi.prompts import PromptSpec, describe_profile, seed_specs
from personalign.fermi.rop import nearest, question_text, similarity_matrix
from personalign.fermi.scoring import score_prompt
from personalign.fermi.seeding import derive_seed
from personalign.fermi.state import (
    FermiState,
    StateMismatchError,
    append_round_log,
    load_state,
    save_state,
    truncate_round_log,
)
from personalign.lm.base import GenerationRequest, LanguageModel, Message

RoundCallback = Callable[[int, int, FermiState], None]


@dataclass(frozen=True)
class UserTask:
    """One user's optimization input: id, task name, profile and training opinions only."""

    user_id: str
    task: str
    profile: Profile
    train: tuple[LabeledQuestion, ...]

    @classmethod
    def from_split(cls, split: UserSplit) -> UserTask:
        """Keep only what a method may learn from (never the test items)."""
        return cls(split.user_id, split.dataset or "task", split.profile, tuple(split.train))


def model_ids(
    answer_lm: LanguageModel, optimizer_lm: LanguageModel | None, embedder: Embedder | None
) -> dict:
    return {
        "answer_lm": answer_lm.model_id,
        "optimizer_lm": (optimizer_lm or answer_lm).model_id,
        "embedder": embedder.model_id if embedder is not None else "",
    }


def train_neighbours(train: Sequence[LabeledQuestion], embedder: Embedder) -> list[list[int]]:
    """For each training item, the other items by decreasing similarity (ties to lower index)."""
    emb = embedder.encode([question_text(it.question) for it in train])
    sims = similarity_matrix(emb, emb)
    return [[j for j, _ in nearest(sims[i], len(train) - 1, exclude=i)] for i in range(len(train))]


def _new_counters() -> dict[str, Any]:
    return {
        "optimizer_calls": 0,
        "candidates_parsed": 0,
        "candidates_accepted": 0,
        "rejected": {},
        "prompts_scored": 0,
        "answer_requests": 0,
        "empty_rounds": 0,
    }


def generate_candidates(
    meta_text: str,
    optimizer_lm: LanguageModel,
    config: FermiConfig,
    seen_keys: set[str],
    seed_for: Callable[[int, int], int],
    counters: dict[str, Any],
) -> tuple[list[PromptSpec], dict[str, Any]]:
    """Ask the optimizer for ``K`` valid new prompts (with up to ``R`` extra calls per missing
    one). ``seed_for(slot, attempt)`` gives each call's seed. Returns the accepted specs and a log
    of raw outputs and parse outcomes. ``seen_keys`` is extended with the accepted prompts."""
    K, R = config.K, config.retries
    raw: list[dict[str, Any]] = []
    outcomes: list[CandidateOutcome] = []
    accepted: list[PromptSpec] = []

    def consider(texts: list[str]) -> int:
        got = 0
        for text in texts:
            if len(accepted) >= K:
                break
            counters["candidates_parsed"] += 1
            reason = validate_candidate(
                text, seen_keys, min_words=config.min_words, max_words=config.max_words
            )
            outcomes.append(CandidateOutcome(text, reason))
            if reason is None:
                accepted.append(PromptSpec(text.strip(), origin="optimizer"))
                seen_keys.add(accepted[-1].key)
                counters["candidates_accepted"] += 1
                got += 1
            else:
                counters["rejected"][reason] = counters["rejected"].get(reason, 0) + 1
        return got

    def unparseable(slot: int, attempt: int) -> None:
        outcomes.append(CandidateOutcome("", "unparseable"))
        counters["rejected"]["unparseable"] = counters["rejected"].get("unparseable", 0) + 1

    user = (Message("user", meta_text),)
    if config.small_model_mode:
        pending = list(range(K))
        for attempt in range(R + 1):
            if not pending or len(accepted) >= K:
                break
            reqs = [
                GenerationRequest(
                    messages=user,
                    max_tokens=config.max_new_tokens,
                    temperature=config.temperature,
                    top_p=config.top_p,
                    stop=("</prompt>",),
                    seed=seed_for(slot, attempt),
                    prefill=config.prefill,
                )
                for slot in pending
            ]
            results = optimizer_lm.generate(reqs)
            counters["optimizer_calls"] += len(reqs)
            still = []
            for slot, res in zip(pending, results, strict=True):
                raw.append({"slot": slot, "attempt": attempt, "text": res.text})
                texts = parse_candidates(config.prefill + res.text)[:1]
                if not texts:
                    unparseable(slot, attempt)
                if not texts or consider(texts) == 0:
                    still.append(slot)
            pending = still
    else:
        attempt, extra_budget, extra_used = 0, None, 0
        while len(accepted) < K:
            if attempt > 0:
                if extra_budget is None:
                    extra_budget = R * (K - len(accepted))
                if extra_used >= extra_budget:
                    break
                extra_used += 1
            req = GenerationRequest(
                messages=user,
                max_tokens=config.max_new_tokens * K,
                temperature=config.temperature,
                top_p=config.top_p,
                seed=seed_for(0, attempt),
            )
            res = optimizer_lm.generate([req])[0]
            counters["optimizer_calls"] += 1
            raw.append({"slot": 0, "attempt": attempt, "text": res.text})
            texts = parse_candidates(res.text)
            if not texts:
                unparseable(0, attempt)
            consider(texts)
            attempt += 1
    log = {"raw_outputs": raw, "parse": [o.to_dict() for o in outcomes]}
    return accepted, log


def _early_stop(state: FermiState, config: FermiConfig, memory: list[ScoredPrompt]) -> str | None:
    if not config.early_stop or not memory:
        return None
    if memory[0].acc >= 1.0:
        return "perfect"
    keys = state.best_keys
    if len(keys) > config.patience and keys[-1] == keys[-1 - config.patience]:
        return "patience"
    return None


def optimize(
    task: UserTask,
    answer_lm: LanguageModel,
    optimizer_lm: LanguageModel | None = None,
    config: FermiConfig | None = None,
    *,
    seed: int = 0,
    embedder: Embedder | None = None,
    workdir: str | Path | None = None,
    force: bool = False,
    on_round: RoundCallback | None = None,
) -> FermiState:
    """Run (or resume, or just load) the Fermi loop for one user; returns the final state.

    The pool is ``state.memory_prompts()``: the top-L scored prompts, best first. ``force``
    discards a saved state made with a different config instead of refusing it.
    """
    config = config or FermiConfig()
    optimizer_lm = optimizer_lm or answer_lm
    if not task.train:
        raise ValueError(f"user {task.user_id!r} has no training opinions to optimize on")
    chash = config.config_hash()
    state_path = Path(workdir) / "state.json" if workdir is not None else None
    log_path = Path(workdir) / "rounds.jsonl" if workdir is not None else None
    state: FermiState | None = None
    if state_path is not None and state_path.exists():
        state = load_state(state_path)
        problem = None
        if state.config_hash != chash:
            problem = f"config hash {state.config_hash} != {chash}"
        elif state.user_id != task.user_id:
            problem = f"user {state.user_id!r} != {task.user_id!r}"
        if problem:
            if not force:
                raise StateMismatchError(
                    f"{state_path}: saved state does not match this run ({problem}); "
                    "use another workdir or force=True to discard it"
                )
            shutil.rmtree(state_path.parent)
            state = None
    if state is None:
        state = FermiState(
            user_id=task.user_id,
            task=task.task,
            config=config.to_dict(),
            config_hash=chash,
            models=model_ids(answer_lm, optimizer_lm, embedder),
            counters=_new_counters(),
        )
    if state.finished:
        return state
    if log_path is not None:
        truncate_round_log(log_path, state.round)

    train = task.train
    n = len(train)
    neighbours = (
        train_neighbours(train, embedder) if config.insert_opinions and embedder is not None else None
    )
    profile_text = describe_profile(task.profile)
    seen_keys = {sp.key for sp in state.archive}
    counters = state.counters

    for r in range(state.round + 1, config.T + 1):
        record: dict[str, Any] = {"round": r, "user_id": task.user_id, "config_hash": chash}
        memory = state.memory_prompts()
        # The optimizer sees (and Ext builds on) the top-L prompts without Ext slots, so the Fermi
        # trajectory is the same with or without Ext; Ext prompts compete in the final pool only.
        plain = [sp for sp in state.archive if not sp.spec.has_slots]
        shown = (
            memory
            if len(plain) == len(state.archive)
            else update_memory([], plain, config.L, config.use_soft)
        )
        if r == 1:
            specs = [s for s in seed_specs(task.profile, config.seeds) if s.key not in seen_keys]
            for s in specs:
                seen_keys.add(s.key)
            record["meta_prompt"] = None
        else:
            meta = build_meta_prompt(
                profile_text,
                shown,
                n,
                1 if config.small_model_mode else config.K,
                config,
                answer_lm.count_tokens,
            )
            record["meta_prompt"] = meta.text
            record["meta_stats"] = {
                "section_tokens": meta.section_tokens,
                "shown_failures": meta.shown_failures,
                "hidden_failures": meta.hidden_failures,
            }

            def seed_for(slot: int, attempt: int, r: int = r) -> int:
                return derive_seed(seed, task.task, task.user_id, f"candidates:attempt{attempt}", r, slot)

            specs, gen_log = generate_candidates(
                meta.text, optimizer_lm, config, seen_keys, seed_for, counters
            )
            record.update(gen_log)
            if config.insert_opinions and shown:
                ext = insert_opinions_candidates(shown[0], n, config, seen_keys, neighbours is not None)
                for s in ext:
                    seen_keys.add(s.key)
                specs += ext
                record["ext"] = [s.to_dict() for s in ext]
        scored = []
        for spec in specs:
            birth = len(state.archive) + len(scored)
            sp = score_prompt(answer_lm, spec, train, birth=birth, round=r, train_neighbours=neighbours)
            scored.append(sp)
            counters["prompts_scored"] += 1
            counters["answer_requests"] += n
        if not scored:
            counters["empty_rounds"] += 1
        state.archive.extend(scored)
        new_memory = update_memory(memory, scored, config.L, config.use_soft)
        state.memory = [sp.birth for sp in new_memory]
        state.best_keys.append(list(sort_key(new_memory[0], config.use_soft)) if new_memory else [])
        state.round = r
        stop = _early_stop(state, config, new_memory)
        if stop or r == config.T:
            state.finished = True
            state.stop_reason = stop or "rounds"
        record["candidates"] = [sp.to_dict() for sp in scored]
        record["memory"] = state.memory
        record["stop"] = state.stop_reason
        if log_path is not None and state_path is not None:
            append_round_log(log_path, record)
            save_state(state_path, state)
        mass = sum(sp.letter_mass for sp in scored) / len(scored) if scored else 1.0
        if r == 1 and mass < 0.5:
            warnings.warn(
                f"user {task.user_id!r}: mean letter mass {mass:.2f} < 0.5 on the seed prompts; "
                f"the answering model {answer_lm.model_id!r} mostly ignores the option letters",
                stacklevel=2,
            )
        if on_round is not None:
            on_round(r, config.T, state)
        if state.finished:
            break
    return state
