"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

``<name>.safetensors`` holds the model's state dict (``model.*``), the optimiser's per-parameter
tensors (``optim.<param index>.<key>``) and the torch RNG states (``rng.torch``, ``rng.cuda.<i>``,
``rng.numpy``); ``<name>.json`` holds the step, epoch, best validation metric, early-stopping
counters, history, optimiser hyper-parameters, Python/NumPy RNG scalars and the resolved config.
Both files are written atomically (temporary file, then rename), the JSON last, so a crash never
leaves a checkpoint whose halves disagree.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from personalign.np.errors import CheckpointError

FORMAT = "personalign-np-checkpoint-v1"


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """All global RNG states, split into tensors and JSON-able scalars."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).astype(np.int64))
    py_version, py_state, py_gauss = random.getstate()
    scalars = {
        "numpy": [name, int(pos), int(has_gauss), float(cached)],
        "python": [py_version, list(py_state), py_gauss],
    }
    return tensors, scalars


def restore_rng(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    name, pos, has_gauss, cached = scalars["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    py_version, py_state, py_gauss = scalars["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def _optimizer_split(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, extra in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(extra)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    folder: str | Path,
    name: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    """Write ``folder/name.safetensors`` and ``folder/name.json``; ``state`` must be JSON-able."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_split(optimizer)
    rng_tensors, rng_scalars = capture_rng()
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    st = folder / f"{name}.safetensors"
    tmp = st.with_name(st.name + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(st)
    meta = {"format": FORMAT, "state": state, "optimizer": opt_meta, "rng": rng_scalars}
    js = folder / f"{name}.json"
    tmp = js.with_name(js.name + ".tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(js)
    return js


def has_checkpoint(folder: str | Path, name: str = "last") -> bool:
    folder = Path(folder)
    return (folder / f"{name}.json").is_file() and (folder / f"{name}.safetensors").is_file()


def load_checkpoint(
    folder: str | Path,
    name: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    restore_rng_state: bool = True,
) -> dict[str, Any]:
    """Restore model, optimiser and RNG states in place; return the saved ``state`` dict."""
    folder = Path(folder)
    js, st = folder / f"{name}.json", folder / f"{name}.safetensors"
    if not has_checkpoint(folder, name):
        raise CheckpointError(f"{folder}: no checkpoint {name!r} (expected {js.name} and {st.name})")
    try:
        meta = json.loads(js.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{js}: not valid JSON ({err})") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{js}: format {meta.get('format')!r}, expected {FORMAT!r}")
    tensors = load_file(str(st))
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_sd, strict=True)
        dev = next(model.parameters()).device
        optimizer.load_state_dict(_optimizer_join(tensors, meta["optimizer"]))
        for s in optimizer.state.values():  # AdamW keeps 'step' on CPU; moments follow the params
            for k, v in s.items():
                if isinstance(v, torch.Tensor) and k != "step":
                    s[k] = v.to(dev)
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{st}: does not match this model/optimiser ({err})") from err
    if restore_rng_state:
        restore_rng(tensors, meta["rng"])
    return meta["state"]
