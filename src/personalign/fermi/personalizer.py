"""`FermiPersonalizer`: Fermi (and OPRO, fermi+) as a scikit-learn-shaped estimator for one user.

``fit(split)`` learns the user's prompt pool from ``split.profile`` and ``split.train`` only;
``predict(questions)`` answers with Retrieval-of-Prompt (or the single best prompt when
``config.use_rop`` is off), one answering request per question, all in one batch. The learned
state round-trips through JSON with :meth:`FermiPersonalizer.save` / :meth:`FermiPersonalizer.load`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from personalign.data.types import LabeledQuestion, Profile, Question, UserSplit
from personalign.embed.base import Embedder
from personalign.fermi.config import FermiConfig
from personalign.fermi.loop import RoundCallback, UserTask, model_ids, optimize
from personalign.fermi.memory import ScoredPrompt
from personalign.fermi.prompts import render_system
from personalign.fermi.rop import nearest, question_text, select_prompt, similarity_matrix
from personalign.fermi.state import FermiState, read_json, write_json_atomic
from personalign.lm.base import LanguageModel
from personalign.lm.chat import render_choice
from personalign.methods.base import Prediction

SAVE_FORMAT = "personalign.fermi.personalizer/v1"


def _safe_name(user_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", user_id) or "_"


class FermiPersonalizer:
    """Per-user prompt optimization from mis-aligned responses, with Retrieval-of-Prompt.

    Args:
        answer_lm: the model that answers (and scores) questions.
        optimizer_lm: the model that writes prompts; defaults to ``answer_lm``.
        embedder: sentence embedder for Retrieval-of-Prompt and the Ext retrieval slot (needed
            when ``config.use_rop`` is on).
        config: the :class:`FermiConfig` (``show_failures=False`` gives OPRO, ``use_rop=False``
            the single best prompt, ``insert_opinions=True`` is ``fermi+``).
        seed: global seed; every sampled call's seed derives from it, the task and the user id.
        workdir: folder for resumable per-user state (``<workdir>/<user_id>/state.json`` and
            ``rounds.jsonl``); ``None`` keeps nothing on disk.
        force: discard a saved state made with a different config instead of refusing it.
        on_round: optional callback ``(round, T, state)`` after every round (progress bars).

    Learned attributes (after :meth:`fit`): ``user_id_``, ``task_``, ``profile_``, ``train_``,
    ``pool_`` (scored prompts, best first), ``C_`` and ``S_`` (pool × training-item correctness and
    gold log-probability), ``state_`` (the run state, ``None`` after :meth:`load`), ``models_``.
    """

    def __init__(
        self,
        answer_lm: LanguageModel,
        optimizer_lm: LanguageModel | None = None,
        embedder: Embedder | None = None,
        config: FermiConfig | None = None,
        seed: int = 0,
        workdir: str | Path | None = None,
        force: bool = False,
        on_round: RoundCallback | None = None,
    ) -> None:
        self.answer_lm = answer_lm
        self.optimizer_lm = optimizer_lm
        self.embedder = embedder
        self.config = config or FermiConfig()
        self.seed = seed
        self.workdir = workdir
        self.force = force
        self.on_round = on_round
        self._train_emb: np.ndarray | None = None

    # -- learning ------------------------------------------------------------------------------

    def user_workdir(self, user_id: str) -> Path | None:
        """Where this user's run state lives (``None`` without a workdir)."""
        return None if self.workdir is None else Path(self.workdir) / _safe_name(user_id)

    def fit(self, split: UserSplit) -> Self:
        """Learn the user's prompt pool from ``split.profile`` and ``split.train`` only."""
        if self.config.use_rop and self.embedder is None:
            raise ValueError("Retrieval-of-Prompt needs an embedder (or use a config with use_rop=False)")
        task = UserTask.from_split(split)
        state = optimize(
            task,
            self.answer_lm,
            self.optimizer_lm,
            self.config,
            seed=self.seed,
            embedder=self.embedder,
            workdir=self.user_workdir(task.user_id),
            force=self.force,
            on_round=self.on_round,
        )
        self._set_learned(task, state.memory_prompts(), state.models)
        self.state_: FermiState | None = state
        return self

    def _set_learned(self, task: UserTask, pool: list[ScoredPrompt], models: dict[str, str]) -> None:
        self.user_id_ = task.user_id
        self.task_ = task.task
        self.profile_ = task.profile
        self.train_ = task.train
        self.pool_ = pool
        self.C_ = [list(sp.correct) for sp in pool]
        self.S_ = [list(sp.gold_logp) for sp in pool]
        self.models_ = dict(models)
        self._train_emb = None

    # -- answering -----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "pool_"):
            raise RuntimeError("FermiPersonalizer is not fitted: call fit(split) or load(path) first")
        if not self.pool_:
            raise RuntimeError("the learned prompt pool is empty")

    def predict(self, questions: Sequence[Question]) -> list[Prediction]:
        """Answer each question as the fitted user would (one answering request per question)."""
        self._check_fitted()
        questions = list(questions)
        if not questions:
            return []
        pool, cfg = self.pool_, self.config
        needs_emb = cfg.use_rop or any(sp.spec.retrieval_k for sp in pool)
        sims = None
        if needs_emb:
            if self.embedder is None:
                raise ValueError(
                    "this pool needs an embedder to answer (Retrieval-of-Prompt or a retrieval slot)"
                )
            if self._train_emb is None:
                self._train_emb = self.embedder.encode([question_text(it.question) for it in self.train_])
            q_emb = self.embedder.encode([question_text(q) for q in questions])
            sims = similarity_matrix(q_emb, self._train_emb)
        requests, infos = [], []
        n_train = len(self.train_)
        for qi, q in enumerate(questions):
            info: dict[str, Any] = {"method": "fermi-rop" if cfg.use_rop else "best-prompt"}
            ranked = nearest(sims[qi], n_train) if sims is not None else []
            if cfg.use_rop:
                neigh = ranked[: max(1, min(cfg.n_neighbors, n_train))]
                ids = [i for i, _ in neigh]
                choice = select_prompt(
                    self.C_,
                    [sp.acc for sp in pool],
                    [sp.soft for sp in pool],
                    [sp.birth for sp in pool],
                    ids,
                    cfg.use_soft,
                )
                idx = choice.index
                info.update(
                    neighbour_ids=ids,
                    neighbour_question_ids=[self.train_[i].question.id for i in ids],
                    neighbour_similarities=[s for _, s in neigh],
                    neighbour_acc=list(choice.neighbour_acc),
                    tie_break=choice.tie_break,
                )
            else:
                idx = 0
            sp = pool[idx]
            system = render_system(sp.spec, self.train_, retrieved=[i for i, _ in ranked])
            info.update(
                prompt=sp.text,
                prompt_index=idx,
                prompt_birth=sp.birth,
                prompt_origin=sp.origin,
                prompt_train_acc=sp.acc,
                system=system,
            )
            requests.append(render_choice(q.text, q.options, system))
            infos.append(info)
        results = self.answer_lm.score_choices(requests)
        out = []
        for q, res, info in zip(questions, results, infos, strict=True):
            info["letter_mass"] = res.letter_mass
            out.append(Prediction(question_id=q.id, pred=res.pred, probs=tuple(res.probs), info=info))
        return out

    # -- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The learned state as a JSON-ready dict."""
        self._check_fitted()
        return {
            "format": SAVE_FORMAT,
            "user_id": self.user_id_,
            "task": self.task_,
            "profile": {"attributes": dict(self.profile_.attributes), "text": self.profile_.text},
            "train": [
                {
                    "id": it.question.id,
                    "text": it.question.text,
                    "options": list(it.question.options),
                    "answer": it.answer,
                }
                for it in self.train_
            ],
            "config": self.config.to_dict(),
            "config_hash": self.config.config_hash(),
            "seed": self.seed,
            "models": self.models_,
            "pool": [sp.to_dict() for sp in self.pool_],
            "C": [[int(c) for c in row] for row in self.C_],
            "S": self.S_,
        }

    def save(self, path: str | Path) -> Path:
        """Write the learned state as JSON (atomically); returns the path."""
        write_json_atomic(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(
        cls,
        path: str | Path,
        answer_lm: LanguageModel,
        embedder: Embedder | None = None,
        optimizer_lm: LanguageModel | None = None,
    ) -> FermiPersonalizer:
        """A fitted personalizer from :meth:`save`'s JSON, answering with ``answer_lm``.

        Warns if ``answer_lm`` or ``embedder`` differ from the models the state was learned with.
        """
        d = read_json(path)
        if not isinstance(d, dict) or d.get("format") != SAVE_FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"{path}: field 'format': expected {SAVE_FORMAT!r}, got {got!r}")
        try:
            config = FermiConfig.from_dict(d["config"])
            if config.config_hash() != d["config_hash"]:
                raise ValueError(f"config_hash {d['config_hash']} does not match the config")
            train = tuple(
                LabeledQuestion(Question(str(t["id"]), str(t["text"]), tuple(t["options"])), int(t["answer"]))
                for t in d["train"]
            )
            profile = Profile(attributes=dict(d["profile"]["attributes"]), text=d["profile"]["text"])
            pool = [ScoredPrompt.from_dict(x) for x in d["pool"]]
            models = dict(d["models"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: not a valid saved Fermi state ({type(err).__name__}: {err})") from err
        obj = cls(answer_lm, optimizer_lm, embedder, config, seed=int(d.get("seed", 0)))
        obj._set_learned(UserTask(str(d["user_id"]), str(d["task"]), profile, train), pool, models)
        obj.state_ = None
        now = model_ids(answer_lm, optimizer_lm, embedder)
        for key in ("answer_lm", "embedder"):
            if now[key] and models.get(key) and now[key] != models[key]:
                warnings.warn(
                    f"{path}: learned with {key} {models[key]!r}, now answering with {now[key]!r}",
                    stacklevel=2,
                )
        return obj
