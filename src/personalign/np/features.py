"""Text features for NP-BTL: ``e(x, y) = [e(x); e(y)]`` from a frozen sentence embedder.

Prompt and response are embedded **separately** (spec ``np-alignment.md`` §2): HH-RLHF prompts are
multi-turn and MiniLM reads at most 256 word pieces, so one long string could lose the response, the
only part that differs within a pair. The prompt is **left**-truncated (its latest turns are kept),
the response **right**-truncated, each embedding L2-normalised. With ``length_feature`` the
response part gains one extra coordinate, ``log(1 + w(y))`` with ``w`` the full response's word count.

Embeddings go through the embedder handed in (a caching embedder makes re-runs free); on top of it a
:class:`TextFeatures` table for a whole task is stored once as safetensors + JSON under the cache root
(``PERSONALIGN_CACHE``/np/features), keyed by the embedder's ``model_id``, the truncation settings and
the texts, so training runs load it in milliseconds. No pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from personalign.embed.base import Embedder
from personalign.paths import cache_dir

TEMPLATE_VERSION = "np-text-v1"
"""Bumped whenever the truncation or layout below changes (part of every cache key)."""

MAX_IDENTICAL_FRACTION = 0.005
"""At most this fraction of pairs may have identical chosen/rejected response embeddings."""


@dataclass(frozen=True)
class FeaturizerConfig:
    """How texts become feature vectors.

    Attributes:
        prompt_words: keep the **last** this many whitespace words of a prompt (≈ 1.3 word pieces per
            word, so 150 words fit MiniLM's 256-piece window).
        response_words: keep the **first** this many words of a response.
        length_feature: append ``log(1 + w(y))`` (full response word count) to ``e(y)``.
        batch_size: texts per ``encode`` call.
    """

    prompt_words: int = 150
    response_words: int = 180
    length_feature: bool = False
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.prompt_words < 1 or self.response_words < 1:
            raise ValueError("prompt_words and response_words must be >= 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def truncate_prompt(text: str, max_words: int) -> str:
    """Keep the last ``max_words`` whitespace words (the latest turns of a dialogue)."""
    words = text.split()
    return " ".join(words[-max_words:]) if len(words) > max_words else " ".join(words)


def truncate_response(text: str, max_words: int) -> str:
    """Keep the first ``max_words`` whitespace words of a response."""
    words = text.split()
    return " ".join(words[:max_words])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1.0, norms)).astype(np.float32)


@dataclass
class TextFeatures:
    """Embeddings of a set of prompts and responses, and the pairs that index them.

    ``prompt_emb[i]`` embeds prompt ``i``, ``response_emb[j]`` response ``j`` (with the optional
    length column appended). Pair ``p`` is ``(prompt_idx[p], a_idx[p], b_idx[p])``.
    """

    prompt_emb: np.ndarray
    response_emb: np.ndarray
    prompt_idx: np.ndarray
    a_idx: np.ndarray
    b_idx: np.ndarray
    model_id: str
    config: FeaturizerConfig

    @property
    def dim(self) -> int:
        """Length of one ``e(x, y)`` vector."""
        return self.prompt_emb.shape[1] + self.response_emb.shape[1]

    def __len__(self) -> int:
        return len(self.prompt_idx)

    def pair_features(self, idx: np.ndarray | Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(e(x, a), e(x, b))`` for the pairs ``idx`` (all pairs by default), each ``(n, dim)``."""
        sel = np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64)
        p = self.prompt_emb[self.prompt_idx[sel]]
        return (
            np.concatenate([p, self.response_emb[self.a_idx[sel]]], axis=1),
            np.concatenate([p, self.response_emb[self.b_idx[sel]]], axis=1),
        )

    def identical_fraction(self) -> float:
        """Fraction of pairs whose two response embeddings are identical (within 1e-6)."""
        if len(self) == 0:
            return 0.0
        diff = np.abs(self.response_emb[self.a_idx] - self.response_emb[self.b_idx]).max(axis=1)
        return float((diff <= 1e-6).mean())

    def check(self, max_identical: float = MAX_IDENTICAL_FRACTION) -> None:
        """Raise if too many pairs have identical chosen/rejected embeddings or values are not finite."""
        if not (np.isfinite(self.prompt_emb).all() and np.isfinite(self.response_emb).all()):
            raise ValueError("text features contain NaN or inf")
        frac = self.identical_fraction()
        if frac >= max_identical:
            raise ValueError(
                f"{frac:.2%} of pairs have identical chosen/rejected embeddings (limit {max_identical:.2%}); "
                "responses are probably being truncated away: raise response_words"
            )


class TextFeaturizer:
    """Turns (prompt, response_a, response_b) triples into :class:`TextFeatures` with an embedder.

    Args:
        embedder: any :class:`~personalign.embed.base.Embedder` (wrap it in the caching embedder to
            keep embeddings across runs); hashing embedders make fast tests.
        config: truncation and the optional length feature.
    """

    def __init__(self, embedder: Embedder, config: FeaturizerConfig | None = None) -> None:
        self.embedder = embedder
        self.config = config or FeaturizerConfig()

    # -- single texts -------------------------------------------------------------------------
    def _encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        dim = self.embedder.dim
        out = np.zeros((len(texts), dim), dtype=np.float32)
        bs = self.config.batch_size
        for start in range(0, len(texts), bs):
            chunk = list(texts[start : start + bs])
            vecs = np.asarray(self.embedder.encode(chunk), dtype=np.float32)
            if vecs.shape != (len(chunk), dim):
                raise ValueError(
                    f"embedder {self.embedder.model_id} returned shape {vecs.shape}, "
                    f"expected ({len(chunk)}, {dim})"
                )
            out[start : start + len(chunk)] = vecs
            if progress is not None:
                progress(len(chunk))
        return l2_normalise(out)

    def embed_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        """``e(x)`` for each prompt (left-truncated, L2-normalised)."""
        return self._encode([truncate_prompt(p, self.config.prompt_words) for p in prompts])

    def embed_responses(self, responses: Sequence[str]) -> np.ndarray:
        """``e(y)`` for each response (right-truncated, L2-normalised, + optional length column)."""
        emb = self._encode([truncate_response(r, self.config.response_words) for r in responses])
        return self._with_length(emb, responses)

    def _with_length(self, emb: np.ndarray, responses: Sequence[str]) -> np.ndarray:
        if not self.config.length_feature:
            return emb
        lengths = np.array([[math.log1p(len(r.split()))] for r in responses], dtype=np.float32)
        return np.concatenate([emb, lengths], axis=1)

    @property
    def dim(self) -> int:
        """Length of one ``e(x, y)`` vector: ``2 * embedder.dim`` (+1 with ``length_feature``)."""
        return 2 * self.embedder.dim + int(self.config.length_feature)

    def features(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """``e(x, y)`` for aligned prompts and responses, shape ``(n, dim)`` (the
        :class:`~personalign.np.state.Featurizer` protocol). Repeated prompts are embedded once."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        uniq: dict[str, int] = {}
        rows = [uniq.setdefault(p, len(uniq)) for p in prompts]
        p = self.embed_prompts(list(uniq))
        r = self.embed_responses(responses)
        return np.concatenate([p[np.asarray(rows, dtype=np.int64)], r], axis=1)

    # -- whole pair sets ----------------------------------------------------------------------
    def featurize(
        self,
        triples: Sequence[tuple[str, str, str]],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> TextFeatures:
        """Embed every unique prompt and response of ``(prompt, a, b)`` triples once.

        ``progress(done, total)`` is called after each batch (texts embedded so far, texts to embed).
        """
        if not triples:
            raise ValueError("no pairs to featurize")
        prompts: dict[str, int] = {}
        responses: dict[str, int] = {}
        pi, ai, bi = [], [], []
        for n, (x, a, b) in enumerate(triples):
            for field, value in (("prompt", x), ("a", a), ("b", b)):
                if not isinstance(value, str):
                    raise TypeError(
                        f"pair {n}: field {field!r}: expected a string, got {type(value).__name__}"
                    )
            pi.append(prompts.setdefault(truncate_prompt(x, self.config.prompt_words), len(prompts)))
            ai.append(responses.setdefault(a, len(responses)))
            bi.append(responses.setdefault(b, len(responses)))
        total = len(prompts) + len(responses)
        done = [0]

        def step(k: int) -> None:
            done[0] += k
            if progress is not None:
                progress(done[0], total)

        p_emb = self._encode(list(prompts), step)
        resp_list = list(responses)
        r_emb = self._with_length(
            self._encode([truncate_response(r, self.config.response_words) for r in resp_list], step),
            resp_list,
        )
        return TextFeatures(
            prompt_emb=p_emb,
            response_emb=r_emb,
            prompt_idx=np.asarray(pi, dtype=np.int64),
            a_idx=np.asarray(ai, dtype=np.int64),
            b_idx=np.asarray(bi, dtype=np.int64),
            model_id=self.embedder.model_id,
            config=self.config,
        )

    # -- on-disk table ------------------------------------------------------------------------
    def cache_key(self, triples: Sequence[tuple[str, str, str]]) -> str:
        """sha256 over the template version, embedder id, config and every text, in order."""
        h = hashlib.sha256()
        h.update(f"{TEMPLATE_VERSION}\0{self.embedder.model_id}\0".encode())
        h.update(json.dumps(asdict(self.config), sort_keys=True).encode())
        for x, a, b in triples:
            for t in (x, a, b):
                h.update(b"\0")
                h.update(t.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def featurize_cached(
        self,
        triples: Sequence[tuple[str, str, str]],
        *,
        cache_root: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> TextFeatures:
        """:meth:`featurize`, stored once per (embedder, config, texts) as safetensors + JSON."""
        from safetensors.numpy import load_file, save_file

        root = cache_root or cache_dir("np", "features")
        root.mkdir(parents=True, exist_ok=True)
        key = self.cache_key(triples)
        path = root / f"{key[:32]}.safetensors"
        meta_path = root / f"{key[:32]}.json"
        if path.exists() and meta_path.exists():
            arrays = load_file(str(path))
            feats = TextFeatures(
                prompt_emb=arrays["prompt_emb"],
                response_emb=arrays["response_emb"],
                prompt_idx=arrays["prompt_idx"],
                a_idx=arrays["a_idx"],
                b_idx=arrays["b_idx"],
                model_id=self.embedder.model_id,
                config=self.config,
            )
            if len(feats) == len(triples):
                return feats
        feats = self.featurize(triples, progress=progress)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file(
            {
                "prompt_emb": feats.prompt_emb,
                "response_emb": feats.response_emb,
                "prompt_idx": feats.prompt_idx,
                "a_idx": feats.a_idx,
                "b_idx": feats.b_idx,
            },
            str(tmp),
        )
        os.replace(tmp, path)
        meta = {
            "template_version": TEMPLATE_VERSION,
            "model_id": self.embedder.model_id,
            "config": asdict(self.config),
            "n_pairs": len(feats),
            "key": key,
        }
        tmp_meta = meta_path.with_suffix(f".tmp{os.getpid()}")
        tmp_meta.write_text(json.dumps(meta, indent=2))
        os.replace(tmp_meta, meta_path)
        return feats
