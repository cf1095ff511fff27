"""The evaluation runner: every (user, method) pair, resumable, users in parallel processes.

Data flows one way (architecture.md): the dataset's :class:`UserBase` → one seeded
:class:`UserSplit` per user → ``method.fit(split.for_training())`` → ``method.predict(test
questions)`` → per-user artefacts → :func:`personalign.eval.report.summarize`.

Layout of ``out``::

    run.json                       the run's configuration and its hash
    <method>/<user>/predictions.jsonl   question id, pred, gold, probs, info (one line per test item)
    <method>/<user>/result.json    accuracy, distributional similarity, cost, diagnostics (written last)
    <method>/<user>/state/         the method's own per-user state (``MethodContext.workdir``)
    summary.json, report.md, accuracy.png

A pair whose ``result.json`` exists is finished and skipped on restart; the method's ``state/``
lets an interrupted optimization continue where it stopped. Every random draw is seeded from the
global seed and the user id, so results do not depend on the worker count or the user order.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from personalign.data.types import User, UserBase, UserSplit
from personalign.eval import cost as cost_mod
from personalign.eval.cost import MeteredLM, PhaseCost
from personalign.eval.io import atomic_write_json, atomic_write_text, json_default
from personalign.eval.metrics import DATASET_DISTRIBUTION_METRIC, distribution_similarity
from personalign.methods.base import Prediction

#: Methods that read population aggregates (other people's data): exempt from the per-user
#: privacy invariant and labelled as such in every report. Only they receive ``reference``.
REFERENCE_METHODS = frozenset({"group-majority"})

#: Test items per user when the dataset's users have many items (spec §6: T2 and T3 test on ≤ 50).
DEFAULT_MAX_TEST = {"globalopinionqa": 50, "opinionqa-groups": 50}

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


class RunConfigMismatch(RuntimeError):
    """``out`` holds a run made with a different configuration (resume refused)."""


@dataclass(frozen=True)
class EvalConfig:
    """Everything that determines a run's per-user results.

    Attributes:
        dataset: registered dataset name (``opinionqa-users``, ``globalopinionqa``, …), or the
            name of the user base stored at ``dataset_path``.
        dataset_path: a user base in the project's own format (``personalign.data.native``) to
            read instead of a registered dataset.
        methods: registered method names, evaluated in this order.
        users: how many users (an ``int``, drawn in a seeded order) or explicit user ids.
            ``None``: every user of ``user_set``.
        user_set: named subset the data layer defines (e.g. ``complete``, ``strat10``, ``all``).
        train_k: training opinions per user; the rest (up to ``max_test``) are the test set.
        max_test: cap on test items per user (``None``: the dataset's default, see
            ``DEFAULT_MAX_TEST``; ``0``: no cap).
        model: answering LM (registered name, path, or ``simulated``).
        optimizer_model: optimizer LM; ``None`` uses the answering LM.
        backend: LM backend override (``None``: the model registry's default).
        embedder: embedder name for retrieval (``minilm`` or ``hashing``).
        seed: global seed; split, user order and method seeds derive from it and the user id.
        method_options: passed to every method factory as ``MethodContext.options``.
        data_dir: datasets folder (``None``: ``PERSONALIGN_DATA_DIR`` or ``../shared/data``).
        cache: use the persistent LM-call cache (``True``: the default file; a path: that
            SQLite file; ``False``: no cache).
        plugins: modules imported in every worker before the methods are built (to register
            extra methods, datasets or models).
    """

    dataset: str
    methods: tuple[str, ...]
    dataset_path: str | None = None
    users: int | tuple[str, ...] | None = None
    user_set: str | None = None
    train_k: int = 15
    max_test: int | None = None
    model: str = DEFAULT_MODEL
    optimizer_model: str | None = None
    backend: str | None = None
    embedder: str = "minilm"
    seed: int = 0
    method_options: Mapping[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    cache: bool | str = True
    plugins: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        d["users"] = list(self.users) if isinstance(self.users, tuple) else self.users
        d["method_options"] = dict(self.method_options)
        d["plugins"] = list(self.plugins)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvalConfig:
        d = dict(d)
        d["methods"] = tuple(d["methods"])
        if isinstance(d.get("users"), list):
            d["users"] = tuple(str(u) for u in d["users"])
        d["plugins"] = tuple(d.get("plugins", ()))
        return cls(**d)

    @property
    def effective_max_test(self) -> int | None:
        if self.max_test is None:
            return DEFAULT_MAX_TEST.get(self.dataset)
        return self.max_test or None

    def result_hash(self) -> str:
        """Hash of the fields that change a (user, method) result (not the user or method lists,
        so a run can be extended with more users or methods)."""
        keys = (
            "dataset",
            "dataset_path",
            "train_k",
            "model",
            "optimizer_model",
            "backend",
            "embedder",
            "seed",
        )
        d = {k: getattr(self, k) for k in keys}
        d["max_test"] = self.effective_max_test
        d["method_options"] = dict(self.method_options)
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stable_hash(*parts: object) -> int:
    """A stable 63-bit digest of ``parts`` (sha256, never Python's salted ``hash``)."""
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


def safe_name(user_id: str) -> str:
    """A file-system-safe folder name for ``user_id`` (suffixed with a digest when changed)."""
    clean = re.sub(r"[^A-Za-z0-9._+-]", "_", user_id)
    if clean != user_id or not clean or clean.startswith("."):
        clean = f"{clean.strip('.') or 'user'}-{hashlib.sha256(user_id.encode()).hexdigest()[:8]}"
    return clean


def pair_dir(out: Path, method: str, user_id: str) -> Path:
    return out / method / safe_name(user_id)


def is_done(out: Path, method: str, user_id: str) -> bool:
    return (pair_dir(out, method, user_id) / "result.json").is_file()


# --------------------------------------------------------------------------------------------
# data: user base, user selection, splits, references


def import_plugins(cfg: EvalConfig) -> None:
    """Import the method registry and the configured plugin modules (idempotent)."""
    import importlib

    import personalign.methods  # noqa: F401  (registers the methods)

    for mod in cfg.plugins:
        importlib.import_module(mod)


def load_userbase(cfg: EvalConfig) -> UserBase:
    """The run's user base: the native folder ``dataset_path`` or the registered ``dataset``."""
    if cfg.dataset_path is not None:
        from personalign.data.native import load_userbase as load_native

        ub = load_native(cfg.dataset_path)
        if not isinstance(ub, UserBase):
            raise ValueError(f"{cfg.dataset_path} holds preference pairs, not opinions")
        return ub
    from personalign.data.datasets import load_dataset

    ub = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    if not isinstance(ub, UserBase):
        raise ValueError(
            f"dataset {cfg.dataset!r} holds preference pairs, not opinions; evaluate needs opinions"
        )
    return ub


def select_users(userbase: UserBase, cfg: EvalConfig) -> list[User]:
    """The run's users: explicit ids in the given order, or the first ``N`` of the ``user_set`` in
    a seeded order (stable under reordering or subsetting of the file), among the users with more
    than ``train_k`` opinions."""
    if isinstance(cfg.users, tuple):
        return [userbase.user(uid) for uid in cfg.users]
    if cfg.user_set:
        from personalign.data.split import select_users as select_user_set

        userbase = select_user_set(userbase, cfg.user_set, seed=cfg.seed)
    pool = sorted(
        userbase.users, key=lambda u: (stable_hash(cfg.seed, cfg.dataset, "user-order", u.id), u.id)
    )
    if cfg.users is not None:
        if cfg.users < 1:
            raise ValueError(f"users must be >= 1, got {cfg.users}")
        pool = pool[: cfg.users]
    return pool


def make_split(userbase: UserBase, user: User, cfg: EvalConfig) -> UserSplit:
    """The user's seeded split (:func:`personalign.data.split.split_user`), at most ``max_test``
    test items."""
    from personalign.data.split import split_user

    return split_user(
        user,
        userbase.questions,
        k=cfg.train_k,
        seed=cfg.seed,
        dataset=cfg.dataset,
        max_test=cfg.effective_max_test,
    )


def population_reference(
    userbase: UserBase, user: User, cfg: EvalConfig, memo: dict[str, Any] | None = None
) -> Mapping[str, tuple[float, ...]] | None:
    """Population aggregates for ``group-majority`` (other people's data; see REFERENCE_METHODS):
    all OpinionQA respondents for the OpinionQA tasks, the mean over the *other* users otherwise."""
    from personalign.data.reference import leave_one_out_reference, opinionqa_population_reference

    if cfg.dataset.startswith("opinionqa"):
        memo = {} if memo is None else memo
        if "opinionqa" not in memo:
            memo["opinionqa"] = opinionqa_population_reference(userbase, cfg.data_dir)
        return memo["opinionqa"]
    return leave_one_out_reference(userbase, user.id)


# --------------------------------------------------------------------------------------------
# one worker: its models, and running one user through every pending method


def _load_lm(name: str, backend: str | None, cache: bool | str) -> Any:
    from personalign.lm.factory import get_lm

    return get_lm(name, backend=backend, cache=cache)


def _load_embedder(name: str) -> Any:
    from personalign.embed.factory import get_embedder

    return get_embedder(name)


class Worker:
    """Holds one process's models and user base; evaluates users (lazy loading)."""

    def __init__(self, cfg: EvalConfig, out: Path) -> None:
        self.cfg, self.out = cfg, out
        self._userbase: UserBase | None = None
        self._answer: MeteredLM | None = None
        self._optimizer: MeteredLM | None = None
        self._embedder: Any = None
        self._embedder_loaded = False
        self._memo: dict[str, Any] = {}

    @property
    def userbase(self) -> UserBase:
        if self._userbase is None:
            self._userbase = load_userbase(self.cfg)
        return self._userbase

    def lms(self) -> tuple[MeteredLM, MeteredLM]:
        if self._answer is None:
            self._answer = MeteredLM(_load_lm(self.cfg.model, self.cfg.backend, self.cfg.cache))
            opt = self.cfg.optimizer_model
            if opt is None or opt == self.cfg.model:
                self._optimizer = self._answer
            else:
                self._optimizer = MeteredLM(_load_lm(opt, self.cfg.backend, self.cfg.cache))
        assert self._optimizer is not None
        return self._answer, self._optimizer

    @property
    def embedder(self) -> Any:
        if not self._embedder_loaded:
            self._embedder = _load_embedder(self.cfg.embedder) if self.cfg.embedder else None
            self._embedder_loaded = True
        return self._embedder

    def run_user(
        self,
        user_id: str,
        methods: Sequence[str],
        on_done: Callable[[str, str], None] | None = None,
        on_round: Callable[[str, int, int], None] | None = None,
    ) -> list[tuple[str, str]]:
        """Evaluate ``user_id`` with each of ``methods`` not yet finished; returns the pairs done.

        ``on_round(method, round, T)`` is called after every optimization round of methods that
        report rounds (those with an ``on_round`` attribute, such as Fermi)."""
        from personalign.methods.registry import MethodContext, get_method

        cfg = self.cfg
        import_plugins(cfg)
        user = self.userbase.user(user_id)
        split = make_split(self.userbase, user, cfg)
        done = []
        for method in methods:
            if is_done(self.out, method, user_id):
                continue
            answer_lm, optimizer_lm = self.lms()
            pdir = pair_dir(self.out, method, user_id)
            workdir = pdir / "state"
            workdir.mkdir(parents=True, exist_ok=True)
            reference = (
                population_reference(self.userbase, user, cfg, self._memo)
                if method in REFERENCE_METHODS
                else None
            )
            ctx = MethodContext(
                answer_lm=answer_lm,
                optimizer_lm=optimizer_lm,
                embedder=self.embedder,
                seed=cfg.seed,
                options=dict(cfg.method_options),
                reference=reference,
                workdir=str(workdir),
            )
            phases = {"fit": PhaseCost(), "predict": PhaseCost()}
            lms = [answer_lm, optimizer_lm]
            personalizer = get_method(method, ctx)
            if on_round is not None and getattr(personalizer, "on_round", False) is None:
                personalizer.on_round = lambda r, t, _state, m=method: on_round(m, r, t)  # type: ignore[attr-defined]
            with cost_mod.measure(lms, phases["fit"]):
                personalizer.fit(split.for_training())
            questions = split.test_questions
            with cost_mod.measure(lms, phases["predict"]):
                preds = personalizer.predict(questions)
            write_pair(pdir, method, split, preds, phases, cfg)
            done.append((user_id, method))
            if on_done is not None:
                on_done(user_id, method)
        return done


def _item_record(item: Any, pred: Prediction, metric: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "question_id": pred.question_id,
        "pred": pred.pred,
        "gold": item.answer,
        "correct": pred.pred is not None and pred.pred == item.answer,
        "probs": [float(p) for p in pred.probs],
    }
    if item.distribution is not None:
        rec["target"] = [float(x) for x in item.distribution]
        sim = None
        if metric is not None and pred.probs and len(pred.probs) == len(item.distribution):
            try:
                sim = distribution_similarity(
                    metric,  # type: ignore[arg-type]
                    pred.probs,
                    item.distribution,
                    item.question.ordinals,
                )
            except ValueError:
                sim = None
        rec["similarity"] = sim
    rec["info"] = dict(pred.info)
    return rec


def _diagnostics(records: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Optional per-user diagnostics read from the predictions' ``info`` (``None`` if absent)."""

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    lm = [
        float(r["info"]["letter_mass"])
        for r in records
        if isinstance(r["info"].get("letter_mass"), int | float)
    ]
    ties = [bool(r["info"][k]) for r in records for k in ("tie_break", "rop_tie") if k in r["info"]]
    train = [
        float(r["info"][k])
        for r in records
        for k in ("prompt_train_acc", "train_acc")
        if isinstance(r["info"].get(k), int | float)
    ]
    test_acc = mean([float(r["correct"]) for r in records])
    logloss = []
    for r in records:
        p = r["probs"][r["gold"]] if r["probs"] and 0 <= r["gold"] < len(r["probs"]) else None
        if p is not None:
            logloss.append(-math.log(max(p, 1e-12)))
    return {
        "letter_mass": mean(lm),
        "rop_tie_rate": mean([float(t) for t in ties]),
        "train_minus_test": (mean(train) - test_acc) if train and test_acc is not None else None,
        "gold_logloss": mean(logloss),
    }


def write_pair(
    pdir: Path,
    method: str,
    split: UserSplit,
    preds: Sequence[Prediction],
    phases: Mapping[str, PhaseCost],
    cfg: EvalConfig,
) -> dict[str, Any]:
    """Write ``predictions.jsonl`` then ``result.json`` (atomically; the latter marks it done)."""
    if len(preds) != len(split.test):
        raise RuntimeError(
            f"method {method!r} returned {len(preds)} predictions for {len(split.test)} questions"
        )
    metric = DATASET_DISTRIBUTION_METRIC.get(cfg.dataset)
    records = []
    for item, pred in zip(split.test, preds, strict=True):
        if pred.question_id != item.question.id:
            raise RuntimeError(
                f"method {method!r} answered {pred.question_id!r} where {item.question.id!r} was asked"
            )
        records.append(_item_record(item, pred, metric))
    lines = "".join(json.dumps(r, default=json_default, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(pdir / "predictions.jsonl", lines)
    sims = [r["similarity"] for r in records if r.get("similarity") is not None]
    result = {
        "user_id": split.user_id,
        "method": method,
        "n_train": len(split.train),
        "n_test": len(records),
        "n_correct": sum(r["correct"] for r in records),
        "accuracy": (sum(r["correct"] for r in records) / len(records)) if records else None,
        "similarity": (sum(sims) / len(sims)) if sims else None,
        "similarity_metric": metric if sims else None,
        "covered": [
            r["question_id"] for r in records if r["pred"] is not None and r["info"].get("covered", True)
        ],
        "cost": {k: v.to_dict() for k, v in phases.items()},
        "cost_total": cost_mod.total(dict(phases)),
        "diagnostics": _diagnostics(records),
        "config_hash": cfg.result_hash(),
    }
    atomic_write_json(pdir / "result.json", result)
    return result


# --------------------------------------------------------------------------------------------
# process pool plumbing

_WORKER: Worker | None = None


def _init_worker(cfg_dict: dict[str, Any], out: str, threads: int) -> None:
    global _WORKER
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    _WORKER = Worker(EvalConfig.from_dict(cfg_dict), Path(out))


def _run_in_worker(user_id: str, methods: list[str]) -> list[tuple[str, str]]:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run_user(user_id, methods)


# --------------------------------------------------------------------------------------------
# the public entry point


@dataclass
class RunResult:
    """What :func:`evaluate` did: the output folder, the summary, and how many pairs ran/skipped."""

    out: Path
    summary: dict[str, Any]
    ran: int
    skipped: int
    seconds: float
    report_md: Path | None = None
    chart_png: Path | None = None


def prepare_run(out: Path, cfg: EvalConfig, force: bool = False) -> None:
    """Create ``out`` and write ``run.json``; refuse to resume a run made with another config."""
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / "run.json"
    if run_file.is_file():
        old = json.loads(run_file.read_text())
        if old.get("result_hash") != cfg.result_hash() and not force:
            raise RunConfigMismatch(
                f"{out} holds a run with another configuration (hash {old.get('result_hash')} vs "
                f"{cfg.result_hash()}); use a new --out folder, or --force to mix them"
            )
        methods = list(dict.fromkeys([*old["config"]["methods"], *cfg.methods]))
        users = old.get("users", [])
    else:
        methods, users = list(cfg.methods), []
    record = {
        "config": {**cfg.to_dict(), "methods": methods},
        "result_hash": cfg.result_hash(),
        "users": users,
    }
    atomic_write_json(run_file, record)


def _record_users(out: Path, user_ids: Sequence[str]) -> None:
    run_file = out / "run.json"
    record = json.loads(run_file.read_text())
    record["users"] = list(dict.fromkeys([*record.get("users", []), *user_ids]))
    atomic_write_json(run_file, record)


def evaluate(
    dataset: str | UserBase,
    methods: Sequence[str],
    *,
    users: int | Sequence[str] | None = None,
    user_set: str | None = None,
    train_k: int = 15,
    max_test: int | None = None,
    model: str = DEFAULT_MODEL,
    optimizer_model: str | None = None,
    backend: str | None = None,
    embedder: str = "minilm",
    out: str | Path = "runs/eval",
    seed: int = 0,
    workers: int = 1,
    method_options: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
    cache: bool | str | Path = True,
    plugins: Sequence[str] = (),
    threads: int | None = None,
    force: bool = False,
    progress: bool = True,
    report: bool = True,
) -> RunResult:
    """Evaluate ``methods`` on ``users`` of ``dataset``; write artefacts and a report under ``out``.

    ``dataset`` is a registered name or a :class:`UserBase` (stored under ``out/userbase`` in the
    project's format so that worker processes can read it).

    Resumable: finished (user, method) pairs are skipped, and an interrupted method resumes from
    its own saved state. ``workers > 1`` runs users in separate processes, each with its own
    model (and ``threads`` or ``cores // workers`` torch threads each); results are identical to
    ``workers=1``. ``threads`` also sets the torch threads of an in-process run (on a shared,
    oversubscribed machine 1 thread is often much faster than the default).
    Returns a :class:`RunResult` with the summary (see :func:`personalign.eval.report.summarize`).
    """
    from personalign.eval.report import write_report

    if not methods:
        raise ValueError("no methods given")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    from personalign.methods.registry import METHODS

    import_plugins(EvalConfig("", tuple(methods), plugins=tuple(plugins)))
    out = Path(out)
    dataset_path = None
    if isinstance(dataset, UserBase):
        from personalign.data.native import save_userbase

        dataset_path = str(save_userbase(dataset, out / "userbase"))
        dataset = dataset.name
    for m in methods:
        METHODS.get(m)  # raises "unknown method …; available: …"
    cfg = EvalConfig(
        dataset=dataset,
        methods=tuple(methods),
        dataset_path=dataset_path,
        users=tuple(str(u) for u in users) if users is not None and not isinstance(users, int) else users,
        user_set=user_set,
        train_k=train_k,
        max_test=max_test,
        model=model,
        optimizer_model=optimizer_model,
        backend=backend,
        embedder=embedder,
        seed=seed,
        method_options=dict(method_options or {}),
        data_dir=str(data_dir) if data_dir is not None else None,
        cache=cache if isinstance(cache, bool) else str(cache),
        plugins=tuple(plugins),
    )
    prepare_run(out, cfg, force=force)
    t0 = time.perf_counter()
    worker = Worker(cfg, out)
    selected = [u.id for u in select_users(worker.userbase, cfg)]
    if not selected:
        raise ValueError(f"no users selected from {dataset} (users={users}, user_set={user_set})")
    _record_users(out, selected)
    pending = {uid: [m for m in cfg.methods if not is_done(out, m, uid)] for uid in selected}
    pending = {uid: ms for uid, ms in pending.items() if ms}
    n_pairs = len(selected) * len(cfg.methods)
    n_pending = sum(len(ms) for ms in pending.values())
    skipped = n_pairs - n_pending

    from personalign.eval.progress import RunProgress

    with RunProgress(enabled=progress, n_users=len(selected), n_pairs=n_pairs, done_pairs=skipped) as bar:
        bar.users_done(len(selected) - len(pending))
        if workers == 1 or len(pending) <= 1:
            if threads is not None:
                import torch

                torch.set_num_threads(max(1, threads))
            for uid, ms in pending.items():
                bar.current(uid)
                worker.run_user(uid, ms, on_done=lambda u, m: bar.pair_done(u, m), on_round=bar.round_done)
                bar.users_done(1)
        else:
            per_worker = threads if threads is not None else max(1, (os.cpu_count() or 1) // workers)
            ctx = get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=min(workers, len(pending)),
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(cfg.to_dict(), str(out), per_worker),
            ) as pool:
                futures = {pool.submit(_run_in_worker, uid, ms): uid for uid, ms in pending.items()}
                for fut in as_completed(futures):
                    for u, m in fut.result():
                        bar.pair_done(u, m)
                    bar.users_done(1)
    seconds = time.perf_counter() - t0
    from personalign.eval.report import summarize

    summary = summarize(out, users=selected, methods=list(cfg.methods))
    summary["run"] = {"seconds": seconds, "ran": n_pending, "skipped": skipped, "workers": workers}
    md = png = None
    if report:
        md, png = write_report(out, summary)
    else:
        atomic_write_json(out / "summary.json", summary)
    return RunResult(out, summary, n_pending, skipped, seconds, md, png)
