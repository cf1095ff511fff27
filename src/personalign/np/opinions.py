"""Opinions as preferences: NP-BTL on OpinionQA respondents, and the ``np-btl`` method.

A user's answer to a multiple-choice question is a preference of the chosen option over each other
option: ``answer = j`` on a question with options ``o_0..o_{n-1}`` gives the pairs ``(o_j, o_i)`` for
every ``i != j``. An option's features are ``[e(question); e(option)]`` (:mod:`personalign.np.features`).
NP-BTL conditions on the pairs from a user's known answers and scores every option of a new question;
``softmax`` over the option rewards gives the prediction.

**Population structure.** Unlike Fermi, the NP-BTL model is meta-trained on *other* respondents'
answers (users split by id; the evaluated users are held out of training and validation). It never
sees an evaluated user's answers except the ``k`` known training opinions it is conditioned on at
``fit`` time, and never their test answers. :class:`NPBTLPersonalizer` refuses to fit a user the
model was trained on.

Held-out users (:func:`user_partition`): the evaluated users are the harness's user set
(``holdout_user_set``, default ``strat10`` with the harness seed, so one ``personalign eval`` table can
hold every method on the same users); of the rest, users with ``sha256("np-val|" + id) mod 10 == 0``
validate, the others train.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from personalign.data.options import is_refused
from personalign.data.types import LabeledQuestion, Question, User, UserBase, UserSplit
from personalign.methods.base import Prediction
from personalign.np.episodes import Episode
from personalign.np.errors import NPInputError
from personalign.np.features import TextFeaturizer

OPINION_TYPE_NAMES = ("respondent",)


class PrivacyError(RuntimeError):
    """A model would be used on a user whose answers it was trained on."""


# -- opinions -> pairs -----------------------------------------------------------------------------


def opinion_pairs(n_options: int, answer: int, *, skip: Iterable[int] = ()) -> list[tuple[int, int]]:
    """``(chosen, rejected)`` option-index pairs for one answer: the answer over every other option
    (options in ``skip``, e.g. refusals, are left out as rejected options)."""
    if not 0 <= answer < n_options:
        raise NPInputError(f"answer {answer} is not an option index in 0..{n_options - 1}")
    skipped = set(skip)
    return [(answer, i) for i in range(n_options) if i != answer and i not in skipped]


def refused_options(question: Question) -> list[int]:
    """Indices of the question's refusal options (``Refused``, ``DK/Refused`` …)."""
    return [i for i, o in enumerate(question.options) if is_refused(o)]


def labeled_to_text_pairs(
    items: Sequence[LabeledQuestion], *, drop_refused: bool = True
) -> list[tuple[str, str, str]]:
    """A user's known answers as ``(question, chosen option, rejected option)`` strings."""
    out = []
    for it in items:
        q = it.question
        if drop_refused and is_refused(q.options[it.answer]):
            continue
        skip = refused_options(q) if drop_refused else []
        out += [
            (q.text, q.options[c], q.options[r])
            for c, r in opinion_pairs(len(q.options), it.answer, skip=skip)
        ]
    return out


# -- users by split ------------------------------------------------------------------------------------


def val_bucket(user_id: str) -> int:
    """``sha256("np-val|" + user_id) mod 10``."""
    return int(hashlib.sha256(f"np-val|{user_id}".encode()).hexdigest(), 16) % 10


def user_partition(
    userbase: UserBase,
    *,
    holdout_user_set: str = "strat10",
    seed: int = 0,
    holdout_users: Sequence[str] = (),
) -> dict[str, list[str]]:
    """``{"train": ids, "val": ids, "eval": ids}``: ``eval`` = the harness's ``holdout_user_set``
    (``strat10``/``complete``/``all`` of :func:`personalign.data.split.select_users` with ``seed``)
    plus the explicit ``holdout_users`` (e.g. the users of an existing ``personalign eval`` run); of
    the remaining users those with :func:`val_bucket` 0 validate and the rest train. Each list is
    sorted; the partition depends only on the ids, never on file order."""
    from personalign.data.split import select_users

    unknown = sorted(set(holdout_users) - {u.id for u in userbase.users})
    if unknown:
        raise ValueError(f"holdout_users: {len(unknown)} id(s) not in {userbase.name}, e.g. {unknown[0]!r}")
    held = {u.id for u in select_users(userbase, holdout_user_set, seed=seed).users} | set(holdout_users)
    rest = sorted(u.id for u in userbase.users if u.id not in held)
    return {
        "train": [u for u in rest if val_bucket(u) != 0],
        "val": [u for u in rest if val_bucket(u) == 0],
        "eval": sorted(held),
    }


# -- features ------------------------------------------------------------------------------------------


POPULATION_COLUMNS = 3
"""Extra option columns of the population variant: covered flag, share ``p``, ``log(p + 1e-3)``."""


def population_columns(question: Question, population: Mapping[str, Sequence[float]] | None) -> np.ndarray:
    """``(n_options, 3)``: ``[covered, p, log(p + 1e-3)]`` from population answer shares (zeros when
    the question has no aggregate)."""
    n = len(question.options)
    dist = population.get(question.id) if population is not None else None
    if dist is None or len(dist) != n or sum(dist) <= 0:
        return np.zeros((n, POPULATION_COLUMNS), dtype=np.float32)
    p = np.asarray(dist, dtype=np.float64) / float(sum(dist))
    return np.stack([np.ones(n), p, np.log(p + 1e-3)], axis=1).astype(np.float32)


class OptionFeaturizer:
    """Option features of a question: ``[e(question); e(option)]`` (+ population columns when
    ``population`` is given: the population variant)."""

    def __init__(
        self, featurizer: TextFeaturizer, population: Mapping[str, Sequence[float]] | None = None
    ) -> None:
        self.featurizer = featurizer
        self.population = population

    @property
    def dim(self) -> int:
        return self.featurizer.dim + (POPULATION_COLUMNS if self.population is not None else 0)

    def many(self, questions: Sequence[Question]) -> list[np.ndarray]:
        """``(n_options, dim)`` per question, embedding all texts in one pass."""
        if not questions:
            return []
        prompts = [q.text for q in questions for _ in q.options]
        responses = [o for q in questions for o in q.options]
        feats = self.featurizer.features(prompts, responses)
        out, row = [], 0
        for q in questions:
            f = feats[row : row + len(q.options)]
            row += len(q.options)
            if self.population is not None:
                f = np.concatenate([f, population_columns(q, self.population)], axis=1)
            out.append(f.astype(np.float32))
        return out

    def __call__(self, question: Question) -> np.ndarray:
        return self.many([question])[0]


class QuestionFeatures:
    """Option features for a bank of questions, computed once: ``table[qid]`` is ``(n_options, d)``."""

    def __init__(
        self,
        featurizer: TextFeaturizer,
        questions: Iterable[Question],
        population: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.options = OptionFeaturizer(featurizer, population)
        qs = list(questions)
        if not qs:
            raise NPInputError("no questions to featurize")
        self.table: dict[str, np.ndarray] = dict(zip((q.id for q in qs), self.options.many(qs), strict=True))

    @property
    def dim(self) -> int:
        return self.options.dim


@dataclass
class _UserItems:
    user_id: str
    qids: list[str]
    answers: list[int]


class OpinionEpisodeSource:
    """:class:`~personalign.np.episodes.EpisodeSource` whose episodes are real respondents.

    An episode draws a user of the split, shuffles their answered questions, takes ``num_context``
    **questions** as context and the next ``num_targets`` questions as targets (always disjoint: a
    question never appears on both sides), and turns each into its answer-over-other-option pairs.
    There is one "type" (``respondent``); ``type_index`` is ignored. Refusal answers are skipped and
    refusal options are never used as rejected options.
    """

    def __init__(
        self, userbase: UserBase, partition: Mapping[str, Sequence[str]], features: QuestionFeatures
    ) -> None:
        self.features = features
        self.questions = userbase.questions
        by_id = {u.id: u for u in userbase.users}
        self.users: dict[str, list[_UserItems]] = {}
        for split, ids in partition.items():
            items = []
            for uid in ids:
                items.append(self._items(by_id[uid]))
            self.users[split] = [it for it in items if len(it.qids) >= 2]
        self._pairs: dict[str, list[tuple[int, int]]] = {}

    def _items(self, user: User) -> _UserItems:
        qids, answers = [], []
        for op in sorted(user.opinions, key=lambda o: o.question_id):
            q = self.questions[op.question_id]
            if is_refused(q.options[op.choice]) or op.question_id not in self.features.table:
                continue
            qids.append(op.question_id)
            answers.append(op.choice)
        return _UserItems(user.id, qids, answers)

    @property
    def feature_dim(self) -> int:
        return self.features.dim

    @property
    def type_names(self) -> Sequence[str]:
        return OPINION_TYPE_NAMES

    def split_users(self, split: str) -> list[str]:
        """Ids of the users an episode of ``split`` may draw."""
        return [u.user_id for u in self._split(split)]

    def _split(self, split: str) -> list[_UserItems]:
        if split not in self.users:
            raise NPInputError(f"unknown split {split!r}; available: {', '.join(sorted(self.users))}")
        if not self.users[split]:
            raise NPInputError(f"split {split!r} has no users with at least two usable answers")
        return self.users[split]

    def question_pairs(self, qid: str, answer: int) -> np.ndarray:
        """``(n_pairs, 2, d)``: the answer's option over each other non-refusal option."""
        q = self.questions[qid]
        f = self.features.table[qid]
        pairs = opinion_pairs(len(q.options), answer, skip=refused_options(q))
        if not pairs:
            return np.zeros((0, 2, f.shape[1]), dtype=np.float32)
        idx = np.asarray(pairs, dtype=np.int64)
        return np.stack([f[idx[:, 0]], f[idx[:, 1]]], axis=1)

    def user_episode(
        self, user: _UserItems, order: np.ndarray, num_context: int, num_targets: int
    ) -> Episode:
        """The episode of ``user`` whose questions come in ``order`` (context first)."""
        n_ctx = min(num_context, len(order) - 1)
        ctx_q, tgt_q = order[:n_ctx], order[n_ctx : n_ctx + num_targets]
        d = self.feature_dim
        ctx = [self.question_pairs(user.qids[i], user.answers[i]) for i in ctx_q]
        tgt = [self.question_pairs(user.qids[i], user.answers[i]) for i in tgt_q]
        ctx_arr = np.concatenate(ctx) if ctx else np.zeros((0, 2, d), np.float32)
        tgt_arr = np.concatenate(tgt) if tgt else np.zeros((0, 2, d), np.float32)
        if tgt_arr.shape[0] == 0:  # every target question had a single non-refusal option
            tgt_arr = ctx_arr[-1:] if ctx_arr.shape[0] else tgt_arr
        ctx_ids = (
            np.concatenate([np.full(len(c), i) for i, c in zip(ctx_q, ctx, strict=True)])
            if ctx
            else np.zeros(0)
        )
        tgt_ids = (
            np.concatenate([np.full(len(t), i) for i, t in zip(tgt_q, tgt, strict=True)])
            if tgt
            else np.zeros(0)
        )
        return Episode(
            ctx_arr.astype(np.float32),
            tgt_arr.astype(np.float32),
            0,
            ctx_ids.astype(np.int64),
            tgt_ids.astype(np.int64),
        )

    def sample_episode(
        self,
        rng: np.random.Generator,
        split: str,
        type_index: int,
        num_context: int,
        num_targets: int,
        disjoint: bool,
    ) -> Episode:
        """One respondent of ``split``: ``num_context`` context questions, ``num_targets`` target
        questions (disjoint whatever ``disjoint`` says). ``*_ids`` are the user's question indices."""
        users = self._split(split)
        user = users[int(rng.integers(len(users)))]
        order = rng.permutation(len(user.qids))
        return self.user_episode(user, order, num_context, num_targets)


# -- the method ------------------------------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()


@dataclass
class OpinionModelBundle:
    """A trained opinions model and what is needed to use it: featurizer and training users."""

    model: Any
    featurizer: TextFeaturizer
    training_users: frozenset[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    population: Mapping[str, Sequence[float]] | None = None

    @property
    def options(self) -> OptionFeaturizer:
        """The option featurizer the model was trained with."""
        return OptionFeaturizer(self.featurizer, self.population)


class NPBTLPersonalizer:
    """The ``np-btl`` method: NP-BTL conditioned on a user's known opinions (a Personalizer).

    ``fit(split)`` turns ``split.train`` (the user's known answers; nothing else of the split is read)
    into answer-over-other-option pairs and conditions the model once; ``predict`` scores every option
    of each question and returns ``softmax`` probabilities (refusal options get 0 when
    ``drop_refused``) and the argmax.

    Args:
        bundle: the trained model, its featurizer and the ids of the users it was trained on.
        drop_refused: never predict refusal options and ignore refusal answers in the context.
    """

    def __init__(self, bundle: OpinionModelBundle, *, drop_refused: bool = True) -> None:
        self.bundle = bundle
        self.drop_refused = drop_refused
        self.name = "np-btl+pop" if bundle.population is not None else "np-btl"
        self.uses_population_data = bundle.population is not None

    def fit(self, split: UserSplit) -> Self:
        """Condition on ``split.train`` only. Raises :class:`PrivacyError` for a training user."""
        if split.user_id in self.bundle.training_users:
            raise PrivacyError(
                f"user {split.user_id!r} was among the users this np-btl model was trained on; "
                "evaluate it only on held-out users (see personalign.np.opinions.user_partition)"
            )
        items = [
            it for it in split.train if not (self.drop_refused and is_refused(it.question.options[it.answer]))
        ]
        opts = self.bundle.options
        feats = opts.many([it.question for it in items])
        pairs = []
        for it, f in zip(items, feats, strict=True):
            skip = refused_options(it.question) if self.drop_refused else []
            for c, r in opinion_pairs(len(it.question.options), it.answer, skip=skip):
                pairs.append(np.stack([f[c], f[r]]))
        context = np.stack(pairs) if pairs else np.zeros((0, 2, opts.dim), np.float32)
        self.user_id_ = split.user_id
        self.num_context_pairs_ = len(pairs)
        self.state_ = self.bundle.model.condition(context, allow_empty=True)
        return self

    def predict(self, questions: Sequence[Question]) -> list[Prediction]:
        """Probabilities over each question's options and the most likely one."""
        if not hasattr(self, "state_"):
            raise RuntimeError("call fit(split) before predict(questions)")
        out = []
        for q, f in zip(questions, self.bundle.options.many(list(questions)), strict=True):
            r = np.asarray(self.state_.reward(f), dtype=np.float64)
            if self.drop_refused:
                refused = refused_options(q)
                if len(refused) < len(q.options):
                    r[refused] = -math.inf
            p = softmax(r)
            pred = int(np.argmax(p))
            out.append(
                Prediction(
                    q.id,
                    pred,
                    tuple(float(x) for x in p),
                    {"method": self.name, "context_pairs": self.num_context_pairs_},
                )
            )
        return out


# -- loading a trained bundle --------------------------------------------------------------------------

TRAINING_USERS_FILE = "training_users.json"
_BUNDLES: dict[str, OpinionModelBundle] = {}


def default_model_dir() -> Path:
    """Where ``personalign np train --task opinions`` writes by default: ``<cache>/np/opinions-model``."""
    from personalign.paths import cache_dir

    return cache_dir("np") / "opinions-model"


def load_bundle(folder: str | Path | None = None, embedder: Any = None) -> OpinionModelBundle:
    """Load a trained opinions model folder (cached per path). ``embedder`` overrides the one named in
    the folder's metadata if it has the same ``model_id``."""
    from personalign.embed.factory import get_embedder
    from personalign.np.features import FeaturizerConfig
    from personalign.np.models import load_model

    path = Path(folder) if folder is not None else default_model_dir()
    key = str(path.resolve())
    if key in _BUNDLES:
        return _BUNDLES[key]
    model, meta = load_model(path)
    users_file = path / TRAINING_USERS_FILE
    if users_file.is_file():
        info = json.loads(users_file.read_text())
    elif meta.get("task") == "opinions":  # a `np train --task opinions` folder: recompute the partition
        from personalign.data.opinionqa import load_opinionqa_users

        opts = meta.get("task_options", {})
        info = user_partition(
            load_opinionqa_users(),
            holdout_user_set=str(opts.get("holdout_user_set", "strat10")),
            seed=int(opts.get("split_seed", 0)),
        )
        meta = {**meta, "embedder": opts.get("embedder", "minilm")}
    else:
        raise NPInputError(f"{users_file}: missing; expected the list of training user ids beside the model")
    training = frozenset(str(u) for u in info.get("train", []) + info.get("val", []))
    emb_name = meta.get("embedder", "minilm")
    emb = (
        embedder
        if embedder is not None and embedder.model_id == meta.get("embedder_id")
        else get_embedder(emb_name)
    )
    if meta.get("embedder_id") and emb.model_id != meta["embedder_id"]:
        raise NPInputError(
            f"{path}: model was trained on {meta['embedder_id']} features "
            f"but embedder {emb_name!r} is {emb.model_id}"
        )
    fz = TextFeaturizer(emb, FeaturizerConfig(**meta.get("featurizer", {})))
    population = None
    if meta.get("population"):
        from personalign.data.opinionqa import load_opinionqa_users
        from personalign.data.reference import opinionqa_population_reference

        population = opinionqa_population_reference(load_opinionqa_users())
    bundle = OpinionModelBundle(model, fz, training, {**meta, "partition": info}, population)
    _BUNDLES[key] = bundle
    return bundle


def make_np_btl(context: Any) -> NPBTLPersonalizer:
    """Method factory for the registry: the model folder is ``context.options["np_model"]`` (default
    :func:`default_model_dir`); ``context.options["drop_refused"]`` (default true)."""
    opts = dict(getattr(context, "options", {}) or {})
    bundle = load_bundle(opts.get("np_model"), getattr(context, "embedder", None))
    return NPBTLPersonalizer(bundle, drop_refused=bool(opts.get("drop_refused", True)))


# -- training and evaluation -------------------------------------------------------------------------


@dataclass(frozen=True)
class OpinionTrainConfig:
    """Meta-training NP-BTL on OpinionQA respondents.

    Attributes:
        embedder: embedder name (:func:`personalign.embed.factory.get_embedder`).
        holdout_user_set: the evaluated users, held out of training (a user set of
            :func:`personalign.data.split.select_users`; the eval harness's default is ``strat10``).
        holdout_users: further user ids held out of training and validation (e.g. the ``users`` of
            an existing ``personalign eval`` run's ``run.json``, so ``np-btl`` can join its table).
        split_seed: seed of the user set and of the per-user splits (the harness's ``--seed``).
        k: known answers per evaluated user (the harness's ``k``).
        max_context: largest context, in **questions** (``m ~ U{0..max_context}``).
        num_targets: target questions per training episode.
        hidden: width ``h``.
        lr: AdamW learning rate.
        epochs: epochs of ``episodes_per_epoch`` fresh episodes.
        episodes_per_epoch: episodes (respondents drawn with replacement) per epoch.
        batch_episodes: episodes per step.
        eval_every: validation period in steps.
        patience: early-stopping patience in validations.
        seed: training seed.
        num_threads: torch CPU threads.
        population_feature: append the option's Pew population share to its features.
        model_kind: ``"np-btl"`` or ``"mixture-btl"`` (discrete latent user type with
            ``mixture_components`` heads).
        mixture_components: heads of the ``mixture-btl`` model.
    """

    embedder: str = "minilm"
    holdout_user_set: str = "strat10"
    holdout_users: tuple[str, ...] = ()
    split_seed: int = 0
    k: int = 15
    max_context: int = 15
    num_targets: int = 10
    hidden: int = 256
    lr: float = 3e-4
    epochs: int = 10
    episodes_per_epoch: int = 2048
    batch_episodes: int = 32
    eval_every: int = 32
    patience: int = 8
    seed: int = 0
    num_threads: int | None = None
    population_feature: bool = False
    model_kind: str = "np-btl"
    mixture_components: int = 4


def opinion_features(
    userbase: UserBase, featurizer: TextFeaturizer, population: Mapping[str, Sequence[float]] | None = None
) -> QuestionFeatures:
    """Features of every option of every question of the user base."""
    return QuestionFeatures(
        featurizer, [userbase.questions[q] for q in sorted(userbase.questions)], population
    )


def train_opinions(
    out_dir: str | Path,
    cfg: OpinionTrainConfig | None = None,
    *,
    userbase: UserBase | None = None,
    data_dir: str | Path | None = None,
    embedder: Any = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Meta-train NP-BTL on the training respondents only and save it as a model folder usable by
    the ``np-btl`` method (``model.safetensors``, ``model.json``, ``training_users.json``)."""
    import time

    from personalign.data.opinionqa import load_opinionqa_users
    from personalign.embed.factory import get_embedder
    from personalign.np.config import NPModelConfig, NPTrainingConfig
    from personalign.np.features import FeaturizerConfig
    from personalign.np.models import build_model
    from personalign.np.trainer import NPTrainer

    cfg = cfg or OpinionTrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ub = userbase if userbase is not None else load_opinionqa_users(data_dir)
    part = user_partition(
        ub, holdout_user_set=cfg.holdout_user_set, seed=cfg.split_seed, holdout_users=cfg.holdout_users
    )
    emb = embedder if embedder is not None else get_embedder(cfg.embedder)
    fz = TextFeaturizer(emb, FeaturizerConfig())
    population = None
    if cfg.population_feature:
        from personalign.data.reference import opinionqa_population_reference

        population = opinionqa_population_reference(ub, data_dir)
    qf = opinion_features(ub, fz, population)
    source = OpinionEpisodeSource(ub, {"train": part["train"], "val": part["val"]}, qf)
    mcfg = NPModelConfig(
        kind=cfg.model_kind,  # type: ignore[arg-type]
        feature_dim=qf.dim,
        hidden=cfg.hidden,
        pair_encoder_layers=1,
        num_components=cfg.mixture_components,
    )
    tcfg = NPTrainingConfig(
        lr=cfg.lr,
        batch_episodes=cfg.batch_episodes,
        num_targets=cfg.num_targets,
        max_context=cfg.max_context,
        disjoint_train_context=True,
        epochs=cfg.epochs,
        episodes_per_epoch=cfg.episodes_per_epoch,
        eval_every=cfg.eval_every,
        val_episodes=256,
        patience=cfg.patience,
        seed=cfg.seed,
        num_threads=cfg.num_threads,
        checkpoint_dir=str(out / "checkpoints"),
    )
    t0 = time.perf_counter()
    trainer = NPTrainer(build_model(mcfg, seed=cfg.seed), tcfg).fit(source, progress=progress)
    meta = {
        "task": "opinions",
        "dataset": ub.name,
        "embedder": cfg.embedder,
        "embedder_id": emb.model_id,
        "featurizer": asdict(fz.config),
        "train_config": asdict(cfg),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "steps": trainer.step_,
        "best_val_nll": trainer.best_val_nll_,
        "note": "meta-trained on other respondents (population structure); evaluated users held out",
        "population": "opinionqa-pew-all-respondents" if cfg.population_feature else None,
    }
    trainer.model.save(out, meta)
    (out / TRAINING_USERS_FILE).write_text(json.dumps(part, indent=1))
    _BUNDLES.pop(str(out.resolve()), None)
    return meta


def evaluate_opinions(
    model_dir: str | Path,
    *,
    userbase: UserBase | None = None,
    data_dir: str | Path | None = None,
    embedder: Any = None,
    k: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Accuracy of ``np-btl`` on the held-out users (per-user splits as the Fermi harness makes them:
    :func:`personalign.data.split.split_user` with ``k`` and ``seed``, refusals kept), beside two
    references computed from the **training** users only: the population-majority answer and the
    model with an empty context (``m = 0``)."""
    from personalign.data.opinionqa import load_opinionqa_users
    from personalign.data.split import split_user
    from personalign.eval.stats import bootstrap_ci, paired_comparison

    bundle = load_bundle(model_dir, embedder)
    tc = bundle.metadata.get("train_config", {})
    k = tc.get("k", 15) if k is None else k
    seed = tc.get("split_seed", 0) if seed is None else seed
    ub = userbase if userbase is not None else load_opinionqa_users(data_dir)
    info = bundle.metadata["partition"]
    train_ids = set(info["train"]) | set(info["val"])
    counts: dict[str, np.ndarray] = {}
    for u in ub.users:
        if u.id in train_ids:
            for op in u.opinions:
                q = ub.questions[op.question_id]
                c = counts.setdefault(q.id, np.zeros(len(q.options)))
                c[op.choice] += 1
    from personalign.data.reference import opinionqa_population_reference

    pew = opinionqa_population_reference(ub, data_dir)
    per_user: dict[str, list[float]] = {
        "np-btl": [],
        "np-btl (m=0)": [],
        "population-majority": [],
        "group-majority": [],
    }
    users = []
    covered_user: dict[str, list[float]] = {name: [] for name in per_user}
    for uid in info["eval"]:
        split = split_user(ub.user(uid), ub.questions, k=k, seed=seed, dataset=ub.name)
        if not split.test:
            continue
        users.append(uid)
        gold = [it.answer for it in split.test]
        preds = NPBTLPersonalizer(bundle).fit(split.for_training()).predict(split.test_questions)
        empty = NPBTLPersonalizer(bundle).fit(UserSplit(uid, split.profile, (), (), split.dataset))
        p0 = empty.predict(split.test_questions)
        hits: dict[str, list[float]] = {
            "np-btl": [float(p.pred == g) for p, g in zip(preds, gold, strict=True)],
            "np-btl (m=0)": [float(p.pred == g) for p, g in zip(p0, gold, strict=True)],
            "population-majority": [],
            "group-majority": [],
        }
        covered = []
        for it in split.test:
            c = counts.get(it.question.id)
            if c is None:
                hits["population-majority"].append(0.0)
            else:
                c = c.copy()
                c[refused_options(it.question)] = -1
                hits["population-majority"].append(float(int(np.argmax(c)) == it.answer))
            dist = pew.get(it.question.id)
            ok = dist is not None and len(dist) == len(it.question.options) and sum(dist) > 0
            covered.append(ok)
            pred = max(range(len(dist)), key=lambda j: (round(dist[j], 6), -j)) if ok else None
            hits["group-majority"].append(float(pred == it.answer))
        mask = np.asarray(covered)
        for name, h in hits.items():
            per_user[name].append(float(np.mean(h)))
            if mask.any():
                covered_user[name].append(float(np.asarray(h)[mask].mean()))
    summary = {name: bootstrap_ci(v).to_dict() for name, v in per_user.items()}
    summary_covered = {name: bootstrap_ci(v).to_dict() for name, v in covered_user.items()}
    diffs = {
        other: paired_comparison(
            "np-btl",
            other,
            dict(zip(users, per_user["np-btl"], strict=True)),
            dict(zip(users, per_user[other], strict=True)),
        )
        for other in ("np-btl (m=0)", "population-majority", "group-majority")
    }
    return {
        "variant": "np-btl+pop" if bundle.population is not None else "np-btl",
        "note": "group-majority = Pew all-respondent aggregates (as the eval harness); population-majority = "
        "modal answer of this model's training respondents",
        "users": len(users),
        "k": k,
        "seed": seed,
        "holdout_user_set": tc.get("holdout_user_set"),
        "accuracy": summary,
        "accuracy_covered": summary_covered,
        "covered_note": "accuracy_covered: only test items whose question has a Pew aggregate "
        "(where group-majority answers); users with no such item are left out",
        "paired": _jsonable(diffs),
        "per_user": {"ids": users, **per_user},
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "to_dict"):
        return x.to_dict()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


# -- registry entry for `personalign np train --task opinions` -----------------------------------------


@dataclass(frozen=True)
class OpinionsNPTask:
    """:class:`~personalign.np.tasks.NPTask` ``opinions``: episodes are real OpinionQA respondents.

    Splits: ``train``/``val`` = the training respondents, ``test`` = the held-out evaluated users
    (:func:`user_partition`). Options: ``embedder`` (``minilm``), ``holdout_user_set`` (``strat10``),
    ``split_seed`` (0). Context sizes count **questions**. A folder trained this way works with the
    ``np-btl`` method (the partition is recomputed from the options), but ``train_opinions`` is the
    recommended path: it also writes ``training_users.json``.
    """

    name: str = "opinions"
    description: str = "OpinionQA respondents: answers as answer-over-option preferences (real users)"
    eval_episodes: int = 300
    eval_targets: int = 10

    def featurizer(self, **options: Any) -> TextFeaturizer:
        from personalign.embed.factory import get_embedder
        from personalign.np.features import FeaturizerConfig

        return TextFeaturizer(get_embedder(str(options.get("embedder", "minilm"))), FeaturizerConfig())

    def build_source(
        self, *, seed: int = 0, data_dir: Path | None = None, **options: Any
    ) -> OpinionEpisodeSource:
        from personalign.data.opinionqa import load_opinionqa_users

        ub = load_opinionqa_users(data_dir)
        part = user_partition(
            ub,
            holdout_user_set=str(options.get("holdout_user_set", "strat10")),
            seed=int(options.get("split_seed", 0)),
        )
        fz = self.featurizer(**options)
        return OpinionEpisodeSource(
            ub, {"train": part["train"], "val": part["val"], "test": part["eval"]}, opinion_features(ub, fz)
        )

    def model_config(self, kind: str, feature_dim: int) -> Any:
        from personalign.np.config import NPModelConfig

        return NPModelConfig(kind=kind, feature_dim=feature_dim, hidden=256, pair_encoder_layers=1)

    def training_config(self, **overrides: Any) -> Any:
        from dataclasses import replace

        from personalign.np.config import NPTrainingConfig

        base = NPTrainingConfig(
            lr=3e-4,
            batch_episodes=32,
            num_targets=10,
            max_context=15,
            disjoint_train_context=True,
            epochs=10,
            episodes_per_epoch=2048,
            eval_every=32,
            val_episodes=256,
            patience=8,
        )
        return replace(base, **overrides)


OPINIONS_TASK = OpinionsNPTask()
