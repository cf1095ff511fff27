"""CachedLM: hits and misses, key canonicalisation, persistence, multi-process safety, corruption."""

from __future__ import annotations

import math
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from personalign.lm.base import ChoiceRequest, ChoiceResult, GenerationRequest, LanguageModel, Message
from personalign.lm.cache import CacheCorruptedError, CachedLM, request_key
from personalign.lm.chat import render_choice
from personalign.lm.parse import choice_result_from_text
from personalign.lm.simulated import SimulatedLM

from .contract import check_choice_contract, check_generation_contract


class CountingLM(SimulatedLM):
    """The simulated respondent, remembering the size of every batch it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[str, int]] = []

    def score_choices(self, requests):  # type: ignore[no-untyped-def]
        self.batches.append(("score", len(requests)))
        return super().score_choices(requests)

    def generate(self, requests):  # type: ignore[no-untyped-def]
        self.batches.append(("generate", len(requests)))
        return super().generate(requests)


def _questions(n: int, tag: str = "") -> list[ChoiceRequest]:
    return [
        render_choice(
            f"Question {tag}{i}: do you favour policy {i}?", ["Yes", "Maybe", "No"], "Be very liberal."
        )
        for i in range(n)
    ]


def _gen(text: str, **kw) -> GenerationRequest:  # type: ignore[no-untyped-def]
    return GenerationRequest(messages=(Message("user", text),), max_tokens=12, **kw)


def test_repeated_call_is_a_hit_with_the_same_result(tmp_path: Path) -> None:
    inner = CountingLM()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    assert isinstance(lm, LanguageModel)
    reqs = _questions(3)
    first = lm.score_choices(reqs)
    again = lm.score_choices(reqs)
    assert again == first
    assert inner.batches == [("score", 3)]
    u = lm.usage
    assert (u.cache_misses, u.cache_hits, u.calls) == (3, 3, 3)
    g1 = lm.generate([_gen("write something", temperature=0.8, seed=5)])
    g2 = lm.generate([_gen("write something", temperature=0.8, seed=5)])
    assert g1 == g2 and g1[0].text
    assert inner.batches[-1] == ("generate", 1) and len(inner.batches) == 2
    assert lm.usage.cache_hits == 4 and lm.usage.generated_tokens == g1[0].completion_tokens


def test_only_misses_go_to_the_model_in_one_batch_and_order_is_kept(tmp_path: Path) -> None:
    inner = CountingLM()
    lm = CachedLM(inner, tmp_path / "c.sqlite")
    reqs = _questions(6)
    lm.score_choices([reqs[1], reqs[4]])
    mixed = [reqs[0], reqs[1], reqs[2], reqs[2], reqs[3], reqs[4], reqs[5]]
    out = lm.score_choices(mixed)
    assert inner.batches == [("score", 2), ("score", 4)]  # 0, 2, 3, 5 (2 once, though asked twice)
    assert out == SimulatedLM().score_choices(mixed)
    assert lm.usage.cache_misses == 6 and lm.usage.cache_hits == 3


def test_key_covers_everything_that_changes_the_answer() -> None:
    q = render_choice("Q?", ["a", "b"], "persona")
    base = request_key("simulated", "m1", q)
    assert request_key("simulated", "m2", q) != base
    assert request_key("openai", "m1", q) != base
    assert request_key("simulated", "m1", render_choice("Q?", ["a", "b"], "persona!")) != base
    assert request_key("simulated", "m1", ChoiceRequest(q.messages, 3)) != base
    g = _gen("hi", temperature=0.7, seed=1)
    variants = [
        _gen("hi", temperature=0.7, seed=2),
        _gen("hi", temperature=0.6, seed=1),
        _gen("hi", temperature=0.7, seed=1, top_p=0.9),
        _gen("hi", temperature=0.7, seed=1, stop=("\n",)),
        _gen("hi", temperature=0.7, seed=1, prefill="Sure"),
        GenerationRequest(messages=g.messages, max_tokens=13, temperature=0.7, seed=1),
    ]
    keys = {request_key("simulated", "m1", v) for v in variants}
    assert len(keys) == len(variants) and request_key("simulated", "m1", g) not in keys
    # greedy decoding does not depend on the seed or top-p, so they share an entry
    assert request_key("s", "m", _gen("hi", temperature=0, seed=1)) == request_key(
        "s", "m", _gen("hi", temperature=0, seed=9, top_p=0.5)
    )


def test_persists_across_instances_and_round_trips_minus_infinity(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"

    class ParsingLM(CountingLM):
        def score_choices(self, requests):  # type: ignore[no-untyped-def]
            self.batches.append(("score", len(requests)))
            return [choice_result_from_text("B", r, 7) for r in requests]

    reqs = _questions(2)
    first = CachedLM(ParsingLM(), path).score_choices(reqs)
    assert first[0].logprobs == (-math.inf, 0.0, -math.inf)
    inner = ParsingLM()
    second = CachedLM(inner, path).score_choices(reqs)
    assert second == first and inner.batches == []
    assert isinstance(second[0], ChoiceResult) and second[0].method == "generate" and second[0].pred == 1


def test_disabled_cache_passes_through_and_writes_nothing(tmp_path: Path) -> None:
    inner = CountingLM()
    lm = CachedLM(inner, tmp_path / "off.sqlite", enabled=False)
    reqs = _questions(2)
    assert lm.score_choices(reqs) == lm.score_choices(reqs)
    assert inner.batches == [("score", 2), ("score", 2)]
    assert not (tmp_path / "off.sqlite").exists()
    assert lm.usage.cache_hits == 0


def _worker(path: str, tag: str, n: int) -> None:
    lm = CachedLM(SimulatedLM(), path)
    shared = _questions(20, "shared")
    mine = _questions(n, tag)
    for i in range(0, n, 10):  # many small write transactions, interleaved with the other process
        lm.score_choices(mine[i : i + 10] + shared[i // 10 : i // 10 + 2])
        lm.generate([_gen(f"{tag} text {i}", temperature=0.9, seed=i)])


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    CachedLM(SimulatedLM(), path)  # create the file first
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(path), tag, 200)) for tag in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    inner = CountingLM()
    lm = CachedLM(inner, path)
    assert lm.n_entries() == 200 + 200 + 20 + 20 + 20  # two private sets, the shared 20, 20 generations each
    lm.score_choices(_questions(200, "p") + _questions(200, "q") + _questions(20, "shared"))
    lm.generate([_gen(f"{t} text {i}", temperature=0.9, seed=i) for t in "pq" for i in range(0, 200, 10)])
    assert inner.batches == [] and lm.usage.cache_hits == 460


def test_corrupted_file_gives_a_clear_error_and_rebuild_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "lm_calls.sqlite"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(CacheCorruptedError) as info:
        CachedLM(SimulatedLM(), path)
    msg = str(info.value)
    assert str(path) in msg and f"CachedLM.rebuild('{path}')" in msg and "delete lm_calls.sqlite" in msg
    report = CachedLM.rebuild(path)
    assert report.salvaged == 0 and report.moved_to is not None and report.moved_to.exists()
    lm = CachedLM(SimulatedLM(), path)
    reqs = _questions(2)
    assert lm.score_choices(reqs) == lm.score_choices(reqs) and lm.usage.cache_hits == 2


def test_damaged_entry_and_foreign_file_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    lm = CachedLM(SimulatedLM(), path)
    reqs = _questions(3)
    lm.score_choices(reqs)
    lm.close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE entries SET value = '{broken' WHERE key = ?",
            (request_key("simulated", SimulatedLM().model_id, reqs[0]),),
        )
    with pytest.raises(CacheCorruptedError, match=r"c\.sqlite"):
        CachedLM(SimulatedLM(), path).score_choices(reqs)
    assert CachedLM.rebuild(path).salvaged == 2  # the broken entry is dropped, the others kept
    inner = CountingLM()
    assert CachedLM(inner, path).score_choices(reqs) == SimulatedLM().score_choices(reqs)
    assert inner.batches == [("score", 1)]
    from personalign.embed.cache import CachedEmbedder
    from personalign.embed.hashing import HashingEmbedder

    emb_path = tmp_path / "emb.sqlite"
    CachedEmbedder(HashingEmbedder(), emb_path).encode(["x"])
    with pytest.raises(CacheCorruptedError, match="personalign-embeddings"):
        CachedLM(SimulatedLM(), emb_path)


def test_rebuild_keeps_readable_entries(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    lm = CachedLM(SimulatedLM(), path)
    lm.score_choices(_questions(5))
    lm.close()
    report = CachedLM.rebuild(path)
    assert report.salvaged == 5
    inner = CountingLM()
    assert len(CachedLM(inner, path).score_choices(_questions(5))) == 5 and inner.batches == []


def test_default_path_is_under_the_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONALIGN_CACHE", str(tmp_path / "root"))
    lm = CachedLM(SimulatedLM())
    assert lm.path == tmp_path / "root" / "lm_calls.sqlite" and lm.path.exists()


def test_cached_lm_meets_the_language_model_contract(tmp_path: Path) -> None:
    lm = CachedLM(SimulatedLM(), tmp_path / "c.sqlite")
    check_choice_contract(lm)
    check_generation_contract(lm)
    assert lm.usage.cache_hits > 0  # the contract's repeated requests were answered by the cache


def test_damaged_pages_are_reported_on_read_and_rebuild_salvages(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    lm = CachedLM(SimulatedLM(), path)
    reqs = _questions(400)
    lm.score_choices(reqs)
    lm.close()  # the last connection checkpoints the WAL into the main file
    assert not (tmp_path / "c.sqlite-wal").exists() or (tmp_path / "c.sqlite-wal").stat().st_size == 0
    size = path.stat().st_size
    with open(path, "r+b") as f:  # scribble over the second half of the file (table pages)
        f.seek(size // 2)
        f.write(b"\xff\x00garbage" * ((size - size // 2) // 9))
    with pytest.raises(CacheCorruptedError, match=r"c\.sqlite is unreadable"):
        CachedLM(SimulatedLM(), path).score_choices(reqs)
    report = CachedLM.rebuild(path)
    assert 0 <= report.salvaged < 400 and report.moved_to is not None
    inner = CountingLM()
    healed = CachedLM(inner, path)
    assert healed.score_choices(reqs) == SimulatedLM().score_choices(reqs)
    assert inner.batches == [("score", 400 - report.salvaged)]
