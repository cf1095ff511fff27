"""Population references for the ``group-majority`` baseline (exempt from the privacy invariant):
``{question_id: distribution over that question's options}``.

* OpinionQA individuals: all respondents, i.e. the ``POLPARTY_data.json`` counts summed over every
  party group (``Refused`` and ``nan`` included), matched to the question's options by
  case-insensitive text. Questions without counts, or whose count keys do not all match an option,
  are left out (undefined).
* GlobalOpinionQA: for one country, the mean distribution over the *other* countries.
"""

from __future__ import annotations

from pathlib import Path

from personalign.data.datadir import dataset_path
from personalign.data.errors import DataError
from personalign.data.opinionqa import GROUP_COUNTS_DIR, iter_group_files
from personalign.data.options import normalized
from personalign.data.readers import Where, as_dict, as_number, read_json
from personalign.data.types import UserBase


def opinionqa_population_reference(
    userbase: UserBase, data_dir: str | Path | None = None, attribute: str = "POLPARTY"
) -> dict[str, tuple[float, ...]]:
    """Answer shares of all respondents for each question of ``userbase`` that has counts."""
    root = dataset_path(data_dir, *GROUP_COUNTS_DIR)
    out: dict[str, tuple[float, ...]] = {}
    for _, attr, path in iter_group_files(root):
        if attr != attribute:
            continue
        data = as_dict(read_json(path), Where(str(path)), "(top level)")
        for qid, entry in data.items():
            q = userbase.questions.get(qid)
            if q is None or qid in out:
                continue
            where = Where(str(path), record=qid)
            lookup = {o.casefold(): i for i, o in enumerate(q.options)}
            vec = [0.0] * len(q.options)
            matched = True
            for group, counts in as_dict(entry, where, "(question entry)").items():
                if group in ("MC_options", "question_text"):
                    continue
                for key, value in as_dict(counts, where, group).items():
                    idx = lookup.get(key.casefold())
                    if idx is None:
                        matched = False
                        break
                    vec[idx] += as_number(value, where, f"{group}[{key!r}]", nonneg=True)
                if not matched:
                    break
            if matched and sum(vec) > 0:
                out[qid] = normalized(vec)
    return out


def leave_one_out_reference(userbase: UserBase, user_id: str) -> dict[str, tuple[float, ...]]:
    """For each question some *other* user has a distribution for: the mean of those
    distributions (each renormalized to sum 1). ``user_id`` must be a user of ``userbase``."""
    userbase.user(user_id)  # KeyError for an unknown user
    sums: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for u in userbase.users:
        if u.id == user_id:
            continue
        for o in u.opinions:
            if o.distribution is None:
                continue
            total = sum(o.distribution)
            if total <= 0:
                continue
            acc = sums.setdefault(o.question_id, [0.0] * len(o.distribution))
            if len(acc) != len(o.distribution):
                raise DataError("distributions of different lengths", record=f"{u.id} / {o.question_id}")
            for i, p in enumerate(o.distribution):
                acc[i] += p / total
            counts[o.question_id] = counts.get(o.question_id, 0) + 1
    return {qid: tuple(v / counts[qid] for v in acc) for qid, acc in sums.items()}
