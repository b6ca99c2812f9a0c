"""Resumable training state as safetensors + JSON (no pickle): modules, optimisers, counters."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


def _optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            name = f"{prefix}.state.{index}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    marker = f"{prefix}.state."
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        if name.startswith(marker):
            index, key = name[len(marker):].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_train_state(folder: Path, modules: Mapping[str, torch.nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                     counters: dict) -> None:
    """Write everything needed to continue training; replaces the previous state atomically."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"counters": counters, "optimizers": {}}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"module.{name}.{key}"] = value.detach().cpu().contiguous()
    for name, optimizer in optimizers.items():
        opt_tensors, opt_meta = _optimizer_tensors(f"optimizer.{name}", optimizer)
        tensors.update(opt_tensors)
        meta["optimizers"][name] = opt_meta
    tmp = folder / ".train_state.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # both files carry the same token; an interruption between the two renames leaves a pair
    # that disagrees, which load_train_state refuses rather than mixing two states
    meta["token"] = token = os.urandom(8).hex()
    save_file(tensors, str(tmp / STATE_TENSORS), metadata={"token": token})
    (tmp / STATE_JSON).write_text(json.dumps(meta))
    os.replace(tmp / STATE_TENSORS, folder / STATE_TENSORS)
    os.replace(tmp / STATE_JSON, folder / STATE_JSON)
    tmp.rmdir()


def load_train_state(folder: Path, modules: Mapping[str, torch.nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                     device: torch.device) -> dict | None:
    """Restore a saved state into the given modules/optimisers; returns the counters, or None if
    the folder holds no complete state."""
    if not (folder / STATE_JSON).is_file() or not (folder / STATE_TENSORS).is_file():
        return None
    meta = json.loads((folder / STATE_JSON).read_text())
    with safe_open(str(folder / STATE_TENSORS), framework="pt") as f:
        if (f.metadata() or {}).get("token") != meta.get("token"):
            return None
    tensors = load_file(str(folder / STATE_TENSORS), device=str(device))
    for name, module in modules.items():
        prefix = f"module.{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        prefix = f"optimizer.{name}"
        _restore_optimizer(prefix, optimizer, {k: v for k, v in tensors.items() if k.startswith(prefix + ".")},
                           meta["optimizers"][name])
    return meta["counters"]
