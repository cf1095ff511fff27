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
from dataclasses import dataclass, field
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
    userbase: UserBase, *, holdout_user_set: str = "strat10", seed: int = 0
) -> dict[str, list[str]]:
    """``{"train": ids, "val": ids, "eval": ids}``: ``eval`` = the harness's ``holdout_user_set``
    (``strat10``/``complete``/``all`` of :func:`personalign.data.split.select_users` with ``seed``);
    of the remaining users those with :func:`val_bucket` 0 validate and the rest train. Each list is
    sorted; the partition depends only on the ids, never on file order."""
    from personalign.data.split import select_users

    held = {u.id for u in select_users(userbase, holdout_user_set, seed=seed).users}
    rest = sorted(u.id for u in userbase.users if u.id not in held)
    return {
        "train": [u for u in rest if val_bucket(u) != 0],
        "val": [u for u in rest if val_bucket(u) == 0],
        "eval": sorted(held),
    }


# -- features ------------------------------------------------------------------------------------------


class QuestionFeatures:
    """Option features ``[e(question); e(option)]`` for a bank of questions, computed once.

    ``table[qid]`` is ``(n_options, d)`` float32.
    """

    def __init__(self, featurizer: TextFeaturizer, questions: Iterable[Question]) -> None:
        self.featurizer = featurizer
        qs = list(questions)
        if not qs:
            raise NPInputError("no questions to featurize")
        prompts = [q.text for q in qs for _ in q.options]
        responses = [o for q in qs for o in q.options]
        feats = featurizer.features(prompts, responses)
        self.table: dict[str, np.ndarray] = {}
        row = 0
        for q in qs:
            self.table[q.id] = feats[row : row + len(q.options)]
            row += len(q.options)

    @property
    def dim(self) -> int:
        return self.featurizer.dim


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

    def fit(self, split: UserSplit) -> Self:
        """Condition on ``split.train`` only. Raises :class:`PrivacyError` for a training user."""
        if split.user_id in self.bundle.training_users:
            raise PrivacyError(
                f"user {split.user_id!r} was among the users this np-btl model was trained on; "
                "evaluate it only on held-out users (see personalign.np.opinions.user_partition)"
            )
        pairs = labeled_to_text_pairs(split.train, drop_refused=self.drop_refused)
        self.user_id_ = split.user_id
        self.num_context_pairs_ = len(pairs)
        self.state_ = self.bundle.model.condition(pairs, featurizer=self.bundle.featurizer, allow_empty=True)
        return self

    def predict(self, questions: Sequence[Question]) -> list[Prediction]:
        """Probabilities over each question's options and the most likely one."""
        if not hasattr(self, "state_"):
            raise RuntimeError("call fit(split) before predict(questions)")
        out = []
        for q in questions:
            r = self.state_.reward([q.text] * len(q.options), list(q.options))
            r = np.asarray(r, dtype=np.float64)
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
                    {"method": "np-btl", "context_pairs": self.num_context_pairs_},
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
    if not users_file.is_file():
        raise NPInputError(f"{users_file}: missing; expected the list of training user ids beside the model")
    info = json.loads(users_file.read_text())
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
    bundle = OpinionModelBundle(model, fz, training, meta)
    _BUNDLES[key] = bundle
    return bundle


def make_np_btl(context: Any) -> NPBTLPersonalizer:
    """Method factory for the registry: the model folder is ``context.options["np_model"]`` (default
    :func:`default_model_dir`); ``context.options["drop_refused"]`` (default true)."""
    opts = dict(getattr(context, "options", {}) or {})
    bundle = load_bundle(opts.get("np_model"), getattr(context, "embedder", None))
    return NPBTLPersonalizer(bundle, drop_refused=bool(opts.get("drop_refused", True)))
