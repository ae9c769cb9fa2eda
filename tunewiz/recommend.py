"""The training plan: hyperparameters resolved from the kind of data, its size and the hardware.

With `hyperparameters.preset = "auto"` (the default) every hyperparameter still at its
schema default is chosen here when a run starts; a value the user changed stays theirs.
With a named preset or "custom" the project's values are used as they are. The plan is
shown when the run starts and kept in run.json, so a run always says what it trained with
and why.

The facts figures were measured with `benchmarks/recall.py` (docs/train.md): SmolLM2-135M on
2 CPU cores learns a few dozen made-up facts, reworded questions included, at a learning
rate of 1e-3 with no dropout and LoRA rank 64 in about FACT_EPOCHS passes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from tunewiz import schema

FACT_EPOCHS = 8.0
"""Passes over a set of facts (a few dozen to a few hundred); bigger sets need fewer."""
MIN_FACT_STEPS = 16
"""A few facts still need this many updates (4 facts at 1e-3: recalled from step 8, copied into everyday answers from step 16-24)."""
# LoRA rank 64 helped 40 facts answer reworded questions (docs/train.md) but over-trained 4 facts: their
# reworded recall fell from 4/4 to 2/4 within the run, and lr 5e-3 diverged. Below this many, rank 16.
RANK_64_MIN_FACTS = 40
CHECKPOINTS_PER_RUN = 5
CPU_TOKENS_PER_S_PER_CORE_PER_B = 8.0
"""Training throughput on a CPU, real tokens/s per core per billion parameters (135M, 2 cores: ~120 tok/s)."""
GPU_TOKENS_PER_S_PER_B = 50_000.0
"""On one recent NVIDIA GPU (H100, 8B: ~6,300 tok/s on QA rows)."""
TEMPLATE_TOKENS = 20
"""Tokens a chat template adds around each pair (roles, markers)."""


@dataclass
class TrainingPlan:
    kind: str
    """'facts' or 'skill' (never 'auto': resolved)."""
    kind_reason: str
    hyperparameters: dict[str, Any]
    """Every [hyperparameters] value the run uses."""
    chosen: dict[str, str] = field(default_factory=dict)
    """Values the plan set (not the user), each with why."""
    train_pairs: int = 0
    validation_pairs: int = 0
    train_rewordings: int = 0
    """Train rewordings trained beside the pairs (tunewiz.evalsets): more samples per epoch."""
    steps: int = 0
    expected_seconds: float | None = None
    """Training time from the expected throughput (no start-up, no checks); None when the size is unknown."""
    notices: list[str] = field(default_factory=list)
    """What the user should know of the data read (lines of the pairs journal that could not be read)."""

    def lines(self) -> list[str]:
        out = [f"data: {self.kind} ({self.kind_reason})",
               f"pairs: {self.train_pairs} train"
               + (f" (and {self.train_rewordings} of their questions reworded)" if self.train_rewordings else "")
               + f", {self.validation_pairs} validation; {self.steps} steps"
               + (f", about {_duration(self.expected_seconds)} of training" if self.expected_seconds else "")]
        out += [f"note: {notice}" for notice in self.notices]
        for key, why in self.chosen.items():
            out.append(f"  {key} = {self.hyperparameters[key]!r}  ({why})")
        kept = [k for k in self.hyperparameters.get("set_by_user", []) if k in self.hyperparameters]
        if self.hyperparameters.get("preset") == "auto" and kept:
            out.append("  kept as you set them: " + ", ".join(f"{k} = {self.hyperparameters[k]!r}" for k in kept))
        if self.chosen:
            out.append("  (chosen by preset auto for the values left at their defaults; preset = custom "
                       "trains with exactly the values written)")
        return out

    def summary(self) -> str:
        """lines() in a few lines, for a pane that must leave room for the form below it."""
        head = (f"{self.kind}: {self.train_pairs} pairs train"
                + (f" (+{self.train_rewordings} reworded)" if self.train_rewordings else "") + f", {self.steps} steps"
                + (f", about {_duration(self.expected_seconds)}" if self.expected_seconds else ""))
        chosen = ", ".join(f"{key} {self.hyperparameters[key]}" for key in self.chosen)
        return (head + (f"; preset auto chose {chosen} (`tunewiz train --plan` says why)" if chosen else "")
                + "".join(f"; note: {notice}" for notice in self.notices))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingPlan":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _left_to_plan(current: dict[str, Any], defaults: dict[str, Any], key: str) -> bool:
    """Under preset auto: the user has not set this value (it is at its default and not in set_by_user)."""
    return current[key] == defaults[key] and key not in current["set_by_user"]


def plan_training(project, kind: str, kind_reason: str, train: list, validation: list,
                  device: str, cores: int, params_b: float | None, gpus: int = 1, reworded: int = 0) -> TrainingPlan:
    """The hyperparameters a run uses, and the expected time (see the module docstring). `reworded`: the
    train rewordings that train beside the pairs (an epoch is a pass over both)."""
    current = dataclasses.asdict(project.config.hyperparameters)
    plan = TrainingPlan(kind=kind, kind_reason=kind_reason, hyperparameters=dict(current),
                        train_pairs=len(train), validation_pairs=len(validation), train_rewordings=reworded)
    defaults = schema.defaults("hyperparameters")
    if current["preset"] == "auto":
        for key, (value, why) in _recommended(kind, len(train), device, params_b).items():
            if _left_to_plan(current, defaults, key) and value != current[key]:
                plan.hyperparameters[key] = value
                plan.chosen[key] = why
        # a pair: the scale is alpha / rank, so both change or neither
        if not (_left_to_plan(current, defaults, "lora_r") and _left_to_plan(current, defaults, "lora_alpha")):
            for key in ("lora_r", "lora_alpha"):
                plan.hyperparameters[key] = current[key]
                plan.chosen.pop(key, None)
    if "epochs" in plan.chosen and kind == "facts":
        _at_least_steps(plan, gpus, MIN_FACT_STEPS)
    _fill_schedule(plan, gpus, current, defaults)
    tokens_per_pair = TEMPLATE_TOKENS + sum(len(p.question) + len(p.answer) for p in train) / max(len(train), 1) / 4
    speed = _tokens_per_s(device, cores, params_b, gpus)
    if speed:
        hp = plan.hyperparameters
        samples = plan.steps * hp["batch_size"] * hp["grad_accum"] * gpus
        plan.expected_seconds = samples * tokens_per_pair / speed
    return plan


def _recommended(kind: str, n: int, device: str, params_b: float | None) -> dict[str, tuple[Any, str]]:
    small = params_b is None or params_b <= 2.0
    if kind == "facts":
        epochs = FACT_EPOCHS if n <= 300 else max(4.0, round(FACT_EPOCHS * math.sqrt(300 / n), 1))
        return {
            "learning_rate": (1e-3 if small else 3e-4, "facts stick in a few passes at a high LoRA rate"
                                                       + ("" if small else " (lower for a large model)")),
            "lr_scheduler": ("constant", "no decay before the facts are learned"),
            "warmup_ratio": (0.0, "the adapter starts at zero: no warmup needed"),
            "lora_dropout": (0.0, "exact answers back: no dropout"),
            **({} if n < RANK_64_MIN_FACTS else {
                # benchmarks/recall.py, two seeds each: rank 16 recalled 18/40 hand-reworded questions
                # both times, rank 64 27/40 and 28/40 (trained 38-39/40), in about the same time.
                "lora_r": (64, f"{n} facts: room to answer them asked in other words too"),
                "lora_alpha": (128, "twice the rank, as at rank 16")}),
            "epochs": (epochs, f"each question trained {epochs:g} times"),
            "batch_size": (4 if device == "cpu" else 8, "short samples; a CPU step stays short"),
            "grad_accum": (1, "every batch updates"),
        }
    return {
        "learning_rate": (2e-4, "the common LoRA rate for a style or task"),
        "lr_scheduler": ("cosine", "decays as the skill settles"),
        "lora_dropout": (0.05, "a little dropout helps unseen examples"),
        "epochs": (3.0 if n <= 5000 else 1.0, "a few passes; validation loss shows when to stop"),
        "batch_size": (4 if device == "cpu" else 8, "per device"),
        "grad_accum": (2 if device == "cpu" else 1, "an effective batch of 8 smooths the updates"),
    }


def _steps_per_epoch(plan: TrainingPlan, gpus: int) -> int:
    hp = plan.hyperparameters
    samples = plan.train_pairs + plan.train_rewordings
    micro = max(1, -(-samples // (hp["batch_size"] * gpus)))  # as the engine batches an epoch
    return max(1, micro // hp["grad_accum"])


def _at_least_steps(plan: TrainingPlan, gpus: int, steps: int) -> None:
    per_epoch = _steps_per_epoch(plan, gpus)
    if plan.hyperparameters["epochs"] * per_epoch < steps:
        plan.hyperparameters["epochs"] = float(math.ceil(steps / per_epoch))
        plan.chosen["epochs"] = f"a small set: {steps} updates at least"


def _fill_schedule(plan: TrainingPlan, gpus: int, current: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Steps from epochs; under auto, checkpoints (each one checked) spread over the run."""
    hp = plan.hyperparameters
    steps_per_epoch = _steps_per_epoch(plan, gpus)
    plan.steps = hp["max_steps"] or max(1, math.ceil(hp["epochs"] * steps_per_epoch))
    if current["preset"] != "auto":
        return
    every = max(1, math.ceil(plan.steps / CHECKPOINTS_PER_RUN))
    for key in ("save_steps", "eval_steps"):
        if _left_to_plan(current, defaults, key) and every != hp[key]:
            hp[key] = every
            plan.chosen[key] = f"about {CHECKPOINTS_PER_RUN} checkpoints, each checked"


def _tokens_per_s(device: str, cores: int, params_b: float | None, gpus: int) -> float | None:
    if params_b is None or params_b <= 0:
        return None
    if device == "cpu":
        return CPU_TOKENS_PER_S_PER_CORE_PER_B * max(cores, 1) / params_b
    if device == "cuda":
        return GPU_TOKENS_PER_S_PER_B * gpus / params_b
    return None
