"""Loaders on the real shared data: counts computed independently from the files, valid answers,
Refused handling, numeric options, all-zero distributions, the population references."""

from __future__ import annotations

import ast
import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from personalign.data import (
    UserBase,
    leave_one_out_reference,
    load_dataset,
    load_preference_pairs,
    opinionqa_population_reference,
    report_of,
    split_user,
)
from personalign.data.options import is_refused


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _assert_valid(ub: UserBase) -> None:
    for u in ub.users:
        assert len({o.question_id for o in u.opinions}) == len(u.opinions)
        for o in u.opinions:
            q = ub.questions[o.question_id]
            assert 0 <= o.choice < len(q.options)
            if o.distribution is not None:
                assert len(o.distribution) == len(q.options)
                assert o.distribution[o.choice] == max(o.distribution)


# -- opinionqa-users ------------------------------------------------------------------------------


def test_opinionqa_users_counts_match_the_files(real_users, data_dir):
    folder = data_dir / "opinionqa" / "hwang2023_users"
    raw = _jsonl(folder / "users.jsonl")
    qs = json.loads((folder / "questions.json").read_text())
    assert len(real_users.users) == len(raw) == 420
    assert len(real_users.questions) == len(qs)
    assert sum(len(u.opinions) for u in real_users.users) == sum(len(r["answers"]) for r in raw)
    assert [u.id for u in real_users.users] == [str(r["user_id"]) for r in raw]
    assert sum(1 for u in real_users.users if u.meta["profile_complete"]) == sum(
        r["profile_complete"] for r in raw
    )
    _assert_valid(real_users)


def test_opinionqa_users_answers_resolve_to_the_recorded_text(real_users, data_dir):
    raw = {str(r["user_id"]): r for r in _jsonl(data_dir / "opinionqa/hwang2023_users/users.jsonl")}
    for u in real_users.users:
        texts = {a["qid"]: a["answer"] for a in raw[u.id]["answers"]}
        for o in u.opinions:
            assert real_users.questions[o.question_id].options[o.choice] == texts[o.question_id]


def test_opinionqa_users_profiles_hold_only_known_attributes(real_users, data_dir):
    raw = {str(r["user_id"]): r for r in _jsonl(data_dir / "opinionqa/hwang2023_users/users.jsonl")}
    for u in real_users.users:
        assert dict(u.profile.attributes) == raw[u.id]["profile"]
    sizes = Counter(len(u.profile.attributes) for u in real_users.users)
    assert sizes[12] == sum(1 for r in raw.values() if r["profile_complete"])
    assert all("Political party" in u.profile.attributes for u in real_users.users)


def test_refused_is_kept_as_option_and_dropped_on_request(real_users, data_dir):
    raw = _jsonl(data_dir / "opinionqa/hwang2023_users/users.jsonl")
    n_refused_file = sum(a["answer"] == "Refused" for r in raw for a in r["answers"])
    refused = [
        (u, o)
        for u in real_users.users
        for o in u.opinions
        if real_users.questions[o.question_id].options[o.choice] == "Refused"
    ]
    assert len(refused) == n_refused_file > 0
    user = refused[0][0]
    n_user_refused = sum(1 for uu, _ in refused if uu is user)
    kept = split_user(user, real_users.questions, k=5, seed=0, dataset="t")
    dropped = split_user(user, real_users.questions, k=5, seed=0, dataset="t", drop_refused=True)
    assert len(kept.train) + len(kept.test) == len(user.opinions)
    assert len(dropped.train) + len(dropped.test) == len(user.opinions) - n_user_refused
    for item in dropped.train + dropped.test:
        assert not is_refused(item.question.options[item.answer])


def test_user_sets(data_dir, real_users):
    complete = load_dataset("opinionqa-users", data_dir=data_dir, user_set="complete")
    assert len(complete.users) == sum(1 for u in real_users.users if u.meta["profile_complete"])
    strat = load_dataset("opinionqa-users", data_dir=data_dir, user_set="strat10", seed=0)
    topics = Counter(u.meta["topic"] for u in strat.users)
    assert set(topics.values()) == {10}
    assert len(topics) == len({u.meta["topic"] for u in real_users.users})


# -- opinionqa-groups -----------------------------------------------------------------------------


def _independent_groups(data_dir: Path) -> tuple[set[str], set[tuple[str, str]], int, int, int]:
    qids, groups = set(), set()
    cells = zero = ties = 0
    for wave_dir in sorted((data_dir / "opinionqa/group_counts").iterdir()):
        with open(
            data_dir / "opinionqa/questions" / wave_dir.name / "info.csv", newline="", encoding="utf-8"
        ) as f:
            refs = {r["key"]: ast.literal_eval(r["references"]) for r in csv.DictReader(f)}
        for path in sorted(wave_dir.glob("*_data.json")):
            attr = path.name.split("_data.json")[0]
            for qid, entry in json.loads(path.read_text()).items():
                qids.add(qid)
                low = [o.lower() for o in refs[qid]]
                for g, counts in entry.items():
                    if g in ("MC_options", "question_text") or g in ("Refused", "nan"):
                        continue
                    groups.add((attr, g))
                    vec = [0.0] * len(low)
                    for k, v in counts.items():
                        vec[low.index(k.lower())] += v
                    cells += 1
                    if sum(vec) == 0:
                        zero += 1
                    elif vec.count(max(vec)) > 1:
                        ties += 1
    return qids, groups, cells, zero, ties


def test_opinionqa_groups_counts_match_the_files(real_groups, data_dir):
    qids, groups, cells, zero, ties = _independent_groups(data_dir)
    assert set(real_groups.questions) == qids
    assert {(u.meta["attribute"], u.meta["value"]) for u in real_groups.users} == groups
    assert len(real_groups.users) == len(groups) == 36
    assert len(qids) == 684
    n_opinions = sum(len(u.opinions) for u in real_groups.users)
    assert n_opinions == cells - zero - ties
    assert report_of(real_groups).dropped_counts() == {"all-zero counts": zero, "tied modal answer": ties}
    _assert_valid(real_groups)


def test_opinionqa_groups_options_come_from_references_not_mc_options(real_groups, data_dir):
    comma = [q for q in real_groups.questions.values() if any("," in o for o in q.options)]
    assert comma, "some options contain commas"
    for q in comma[:20]:
        with open(
            data_dir / "opinionqa/questions" / q.meta["wave"] / "info.csv", newline="", encoding="utf-8"
        ) as f:
            row = next(r for r in csv.DictReader(f) if r["key"] == q.id)
        assert list(q.options) == ast.literal_eval(row["references"])
        ords = ast.literal_eval(row["option_ordinal"])
        assert list(q.ordinals[: len(ords)]) == ords
        assert all(v is None for v in q.ordinals[len(ords) :])
    # the noR typo is absorbed: POLICY3_W42's middle option gets its counts
    q = real_groups.questions["POLICY3_W42"]
    j = next(i for i, o in enumerate(q.options) if "noR" in o or "nor worse" in o)
    shares = [o.distribution[j] for u in real_groups.users for o in u.opinions if o.question_id == q.id]
    assert shares and max(shares) > 0


def test_opinionqa_groups_tie_policy_first_keeps_ties(data_dir, real_groups):
    first = load_dataset("opinionqa-groups", data_dir=data_dir, tie_policy="first")
    dropped = report_of(real_groups).dropped_counts()
    assert (
        sum(len(u.opinions) for u in first.users)
        == sum(len(u.opinions) for u in real_groups.users) + dropped["tied modal answer"]
    )


# -- globalopinionqa ------------------------------------------------------------------------------


def test_globalopinionqa_counts_match_the_files(real_goqa, data_dir):
    qs = _jsonl(data_dir / "globalopinionqa/questions.jsonl")
    rows = _jsonl(data_dir / "globalopinionqa/country_distributions.jsonl")
    zero = [r for r in rows if sum(r["distribution"]) == 0]
    nonzero = [r for r in rows if sum(r["distribution"]) > 0]
    tied = [r for r in nonzero if r["distribution"].count(max(r["distribution"])) > 1]
    usable = Counter(r["country"] for r in nonzero if r not in tied)
    kept = {c for c, n in usable.items() if n >= 30}
    assert len(real_goqa.questions) == len(qs) == 1727
    assert len(rows) == 8150 and len(zero) == 8 and len(tied) == 77
    assert {u.id for u in real_goqa.users} == kept
    assert len(kept) == 70
    assert sum(len(u.opinions) for u in real_goqa.users) == sum(usable[c] for c in kept)
    rep = report_of(real_goqa)
    assert rep.dropped_counts() == {
        "all-zero distribution": len(zero),
        "tied modal option": len(tied),
        "too few usable questions": len(usable) - len(kept),
    }
    # the all-zero rows are reported with their lines
    zero_lines = {i for i, r in enumerate(rows, start=1) if sum(r["distribution"]) == 0}
    assert {d.line for d in rep.dropped if d.reason == "all-zero distribution"} == zero_lines
    _assert_valid(real_goqa)
    assert all(u.profile.text == f"You live in {u.id}." for u in real_goqa.users)


def test_globalopinionqa_numeric_options_parsed(real_goqa, data_dir):
    qs = _jsonl(data_dir / "globalopinionqa/questions.jsonl")
    numeric = [q for q in qs if any(not isinstance(o, str) for o in q["options"])]
    assert numeric
    for raw in numeric:
        q = real_goqa.questions[str(raw["q_index"])]
        assert q.option_values == tuple(raw["options"])
        assert all(isinstance(t, str) for t in q.options)
        for text, value in zip(q.options, raw["options"], strict=True):
            if isinstance(value, float):
                assert float(text) == value


def test_globalopinionqa_csv_layout_agrees_with_jsonl(real_goqa, data_dir):
    csv_ub = load_dataset("globalopinionqa-csv", data_dir=data_dir)
    with open(data_dir / "globalopinionqa/global_opinions_format.csv", newline="", encoding="utf-8") as f:
        n_rows = sum(1 for _ in csv.DictReader(f))
    assert len(csv_ub.questions) == n_rows
    assert any(q.option_values for q in csv_ub.questions.values())

    def by_text(ub):
        return {
            (u.id, ub.questions[o.question_id].text, ub.questions[o.question_id].options): (
                o.choice,
                o.distribution,
            )
            for u in ub.users
            for o in u.opinions
        }

    assert by_text(csv_ub) == by_text(real_goqa)


def test_leave_one_out_reference_excludes_the_user(real_goqa):
    uid = real_goqa.users[0].id
    ref = leave_one_out_reference(real_goqa, uid)
    others = [u for u in real_goqa.users if u.id != uid]
    qid = next(o.question_id for o in others[0].opinions)
    dists = [o.distribution for u in others for o in u.opinions if o.question_id == qid]
    expected = [sum(d[i] / sum(d) for d in dists) / len(dists) for i in range(len(dists[0]))]
    assert ref[qid] == pytest.approx(expected)
    own_only = {o.question_id for o in real_goqa.users[0].opinions} - {
        o.question_id for u in others for o in u.opinions
    }
    assert not own_only & set(ref)


def test_population_reference_covers_about_62_percent(real_users, data_dir):
    ref = opinionqa_population_reference(real_users, data_dir)
    items = [o for u in real_users.users for o in u.opinions]
    covered = sum(1 for o in items if o.question_id in ref)
    assert 0.55 < covered / len(items) < 0.70
    for qid, dist in ref.items():
        assert len(dist) == len(real_users.questions[qid].options)
        assert sum(dist) == pytest.approx(1.0)
    # independent check on one question: POLPARTY counts summed over every group
    qid = next(iter(sorted(ref)))
    wave = next(
        p
        for p in (data_dir / "opinionqa/group_counts").iterdir()
        if qid in json.loads((p / "POLPARTY_data.json").read_text())
    )
    entry = json.loads((wave / "POLPARTY_data.json").read_text())[qid]
    opts = [o.lower() for o in real_users.questions[qid].options]
    vec = [0.0] * len(opts)
    for g, counts in entry.items():
        if g not in ("MC_options", "question_text"):
            for k, v in counts.items():
                vec[opts.index(k.lower())] += v
    assert ref[qid] == pytest.approx([v / sum(vec) for v in vec])


# -- preference pairs -----------------------------------------------------------------------------


def test_hh_rlhf_counts_and_prompt_split(data_dir):
    pairs = load_preference_pairs("hh-rlhf", data_dir=data_dir)
    marker = "\n\nAssistant:"
    expected = Counter()
    for subset in ("helpful", "harmless"):
        for r in _jsonl(data_dir / f"hh_rlhf/{subset}-base.test.jsonl.gz"):
            ic, ir = r["chosen"].rfind(marker), r["rejected"].rfind(marker)
            if r["chosen"][: ic + len(marker)] != r["rejected"][: ir + len(marker)]:
                expected["unequal prompts"] += 1
                continue
            a, b = r["chosen"][ic + len(marker) :].strip(), r["rejected"][ir + len(marker) :].strip()
            if not a or not b:
                expected["empty response"] += 1
            elif a == b:
                expected["identical responses"] += 1
            else:
                expected[subset] += 1
    assert pairs.subsets() == {"helpful": expected["helpful"], "harmless": expected["harmless"]}
    assert report_of(pairs).dropped_counts() == {
        k: v for k, v in expected.items() if k not in ("helpful", "harmless")
    }
    for p in pairs:
        assert p.prompt.endswith(marker) and p.chosen == p.chosen.strip() and p.chosen != p.rejected
    assert len({p.metadata["pair_id"] for p in pairs}) == len(pairs)
    users = pairs.by_subset()
    assert {u.id: len(u.pairs) for u in users} == pairs.subsets()
    assert all(p.metadata["subset"] == u.id for u in users for p in u.pairs)
    helpful = load_preference_pairs("hh-rlhf", data_dir=data_dir, subsets=["helpful"])
    assert len(helpful) == expected["helpful"]


def test_ultrafeedback_keeps_scores_and_flags_ties(data_dir):
    pairs = load_preference_pairs("ultrafeedback", data_dir=data_dir)
    raw = _jsonl(data_dir / "ultrafeedback_binarized_sample/train_clean.jsonl") + _jsonl(
        data_dir / "ultrafeedback_binarized_sample/eval_clean.jsonl"
    )
    degenerate = sum(
        1 for r in raw if r["chosen"] == r["rejected"] or not r["chosen"].strip() or not r["rejected"].strip()
    )
    assert len(pairs) == len(raw) - degenerate
    ties_kept = sum(
        1
        for r in raw
        if r["metadata"]["score_chosen"] == r["metadata"]["score_rejected"]
        and r["chosen"] != r["rejected"]
        and r["chosen"].strip()
        and r["rejected"].strip()
    )
    assert sum(1 for p in pairs if p.metadata["tie"]) == ties_kept
    assert all(p.metadata["subset"] == "uf" for p in pairs)
    assert all(isinstance(p.metadata["score_chosen"], float) for p in pairs)
