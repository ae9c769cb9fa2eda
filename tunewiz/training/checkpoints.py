"""Checkpoints: `checkpoints/checkpoint-<step>/`, written so that a crash never leaves one that looks whole.

A checkpoint is written into `checkpoints/.tmp-checkpoint-<step>/`, every file fsynced,
renamed to `checkpoint-<step>`, and only then gets its COMPLETE marker, which also
records the size and SHA-256 of every file. Readers (resume, the checkpoint picker,
export) ignore folders without the marker; resume and export check the sums
(`tunewiz.runs.checkpoint_damage`) and resume falls back to the newest intact one.

Contents: the PEFT adapter (adapter_model.safetensors + adapter_config.json, via
save_pretrained), optimizer.pt, scheduler.pt, rng_state.pt (plus scaler.pt under fp16)
and trainer_state.json {step, epoch, val_loss, max_steps, world_size, time}.
The COMPLETE marker holds the same JSON as trainer_state.json plus "files" (name -> size, sha256).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tunewiz.runs import CHECKPOINT_NAME, COMPLETE_MARKER, Run, checkpoint_damage, file_digests

TRAINER_STATE = "trainer_state.json"
DISK_FULL_BYTES = 64 * 2**20
"""Less free space than this after a failed save: the disk filled up."""


class DiskFullError(Exception):
    """The disk filled up while a checkpoint was written; the partial folder is gone."""


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def save_checkpoint(run: Run, step: int, model: Any, optimizer: Any, scheduler: Any,
                    state: dict[str, Any], scaler: Any = None, gathered: tuple[dict, dict] | None = None) -> Path:
    """`gathered`: a sharded model's whole adapter and optimizer state (tunewiz.training.sharding.gather_state),
    written in place of the model's and the optimizer's own (the same files as an unsharded run's)."""
    import torch

    root = run.checkpoints_dir
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{checkpoint_name(step)}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        adapter, optimizer_state = gathered if gathered else (None, optimizer.state_dict())
        model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": adapter} if adapter else {}))
        torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(_rng_state(), tmp / "rng_state.pt")
        if scaler is not None:
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        for file in tmp.iterdir():
            _fsync(file)
        digests = file_digests(tmp)
        if final.exists():  # a checkpoint of the same step from before a resume: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(root)
        marker = final / COMPLETE_MARKER
        marker.write_text(json.dumps({**state, "files": digests}) + "\n", encoding="utf-8")
        _fsync(marker)
        _fsync(final)
    except Exception as exc:
        # torch and safetensors report a full disk as their own errors; the free space tells.
        full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
                or shutil.disk_usage(root).free < DISK_FULL_BYTES)
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise DiskFullError(f"the disk is full: checkpoint-{step} could not be written in {root}; "
                                "earlier checkpoints are intact. Free some space, then continue with "
                                "`tunewiz train --resume`") from None
        raise
    return final


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, scaler: Any = None,
                    restore_rng: bool = True, sharded: bool = False) -> dict[str, Any]:
    """Restore adapter weights, optimizer, scheduler and RNG; return the trainer state.
    `sharded`: the model is sharded over the processes (FSDP), each takes its part of the whole state."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    optimizer_state = torch.load(path / "optimizer.pt", weights_only=False)
    if sharded:
        from tunewiz.training.sharding import load_state

        load_state(model, optimizer, path / "adapter_model.safetensors", optimizer_state)
    else:
        set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
        optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    if scaler is not None and (path / "scaler.pt").exists():
        scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=False))
    if restore_rng:
        _set_rng_state(torch.load(path / "rng_state.pt", weights_only=False))
    return json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))


def intact_checkpoints(run: Run) -> tuple[list[Path], list[str]]:
    """Complete checkpoints whose files match their marker, by step; and what is wrong with the others."""
    intact, damaged = [], []
    for path in run.complete_checkpoints():
        problem = checkpoint_damage(path)
        (damaged.append(problem) if problem else intact.append(path))
    return intact, damaged


def read_trainer_state(path: Path) -> dict[str, Any]:
    return json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))


def remove_partial(run: Run) -> None:
    """Delete half-written checkpoint folders a crash left behind: the engine's own, and nothing else a
    user keeps beside them (a copied adapter, a note)."""
    if run.checkpoints_dir.is_dir():
        temporary = [p for p in run.checkpoints_dir.iterdir()
                     if p.name.startswith(".tmp-") and CHECKPOINT_NAME.fullmatch(p.name.removeprefix(".tmp-"))]
        unfinished = [p for p in run.checkpoint_folders() if not (p / COMPLETE_MARKER).exists()]
        for folder in temporary + unfinished:
            shutil.rmtree(folder, ignore_errors=True)


def _rng_state() -> dict[str, Any]:
    import random

    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "time": time.time()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except (RuntimeError, IndexError):  # resumed on another number of GPUs
            pass


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
