"""Hyperparameter presets, each value with a word of advice.

A preset fills [hyperparameters]; the user can change any value afterwards (the
preset name then reads 'custom' only if they choose to set it so). Every value
goes through the schema's check, so a preset can never hold an out-of-range value.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewiz.errors import ConfigError
from tunewiz.project import Project


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    values: dict[str, object]
    advice: dict[str, str]


def _auto_values() -> dict[str, object]:
    """Every hyperparameter at its default (none set by the user)."""
    from tunewiz.schema import defaults

    values = defaults("hyperparameters")
    del values["preset"]
    return values


PRESETS: dict[str, Preset] = {
    "auto": Preset(
        "auto",
        "Every value at its default is chosen when training starts, from the kind of data (facts or skill), "
        "its size and the hardware; a value you change stays yours. `tunewiz train` shows what it chose.",
        _auto_values(),
        {"learning_rate": "facts: 1e-3 on small models so facts stick in a few epochs; skill: 2e-4",
         "epochs": "facts: enough passes for each fact to be recalled; skill: 3 passes",
         "save_steps": "about five checkpoints a run, each checked for recall and drift"}),
    "quick-test": Preset(
        "quick-test",
        "A few minutes: checks that data, template and hardware work end to end. The model learns little.",
        {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["all-linear"],
         "learning_rate": 5e-4, "lr_scheduler": "constant", "warmup_ratio": 0.0, "epochs": 1.0,
         "max_steps": 20, "batch_size": 4, "grad_accum": 1, "logging_steps": 1, "eval_steps": 10,
         "save_steps": 10, "gradient_checkpointing": False},
        {"lora_r": "a small adapter is enough to see the loss move",
         "learning_rate": "high and constant so that 20 steps show a falling loss",
         "max_steps": "20 steps whatever the data size; set 0 to use epochs instead",
         "save_steps": "two checkpoints, to try the checkpoint picker and export"}),
    "balanced": Preset(
        "balanced",
        "Good default for teaching style and knowledge from a few hundred to a few thousand pairs.",
        {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": ["all-linear"],
         "learning_rate": 2e-4, "lr_scheduler": "cosine", "warmup_ratio": 0.05, "epochs": 3.0,
         "max_steps": 0, "batch_size": 4, "grad_accum": 2, "logging_steps": 1, "eval_steps": 20,
         "save_steps": 50, "gradient_checkpointing": False},
        {"lora_r": "16 with all linear layers: enough capacity for most QA sets",
         "lora_alpha": "2 x rank keeps the update scale stable when you change the rank",
         "learning_rate": "2e-4 is the common LoRA rate; lower it if the loss jumps or becomes NaN",
         "epochs": "3 passes; watch the validation loss and pick the best checkpoint if it rises",
         "grad_accum": "an effective batch of 8 pairs smooths the updates",
         "eval_steps": "validation loss every 20 steps, so overfitting shows early"}),
    "memorize-facts": Preset(
        "memorize-facts",
        "Make the model repeat specific facts (names, numbers, policies) exactly. Overfits on purpose.",
        {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": ["all-linear"],
         "learning_rate": 1e-3, "lr_scheduler": "constant", "warmup_ratio": 0.0, "epochs": 20.0,
         "max_steps": 0, "batch_size": 4, "grad_accum": 1, "logging_steps": 1, "eval_steps": 20,
         "save_steps": 50, "gradient_checkpointing": False},
        {"learning_rate": "1e-3 is high for LoRA: facts stick in tens of steps (measured: 3 facts in 60 "
                          "steps on SmolLM2-135M); lower it if the loss becomes NaN",
         "lora_dropout": "no dropout: we want the exact answers back",
         "epochs": "many passes over few pairs; the training loss should approach 0",
         "lr_scheduler": "constant: no decay until the facts are learned"}),
}


def apply_preset(project: Project, name: str) -> list[str]:
    """Set [hyperparameters] from a preset (in memory; call project.save()); the keys changed."""
    if name not in PRESETS:
        raise ConfigError(f"hyperparameters.preset must be one of {', '.join(PRESETS)}; got {name!r}")
    changed = []
    for key, value in PRESETS[name].values.items():
        dotted = f"hyperparameters.{key}"
        if project.get(dotted) != value:
            changed.append(key)
        project.set(dotted, value)
    project.set("hyperparameters.preset", name)
    return changed


def advice(name: str, key: str) -> str:
    """The preset's word on one field ('' when it has none)."""
    preset = PRESETS.get(name)
    return preset.advice.get(key, "") if preset else ""


def mark_edited(project: Project, dotted_key: str) -> str:
    """After the user set `dotted_key` (in memory; call project.save()): under preset auto the key is
    recorded as the user's (`set_by_user`, so auto never replaces it, even by a value equal to the
    default); under a named preset, the preset becomes 'custom'. Returns a line saying so, or ''."""
    section, _, key = dotted_key.partition(".")
    hp = project.config.hyperparameters
    if section != "hyperparameters" or key in ("preset", "set_by_user") or hp.preset == "custom":
        return ""
    if hp.preset == "auto":
        if key in hp.set_by_user:
            return ""
        hp.set_by_user = [*hp.set_by_user, key]
        return f"kept as you set it: preset auto chooses only the values you have not set ({key} is now in " \
               "hyperparameters.set_by_user)"
    hp.preset = "custom"
    return "hyperparameters.preset = 'custom' (a value of the preset was changed)"
