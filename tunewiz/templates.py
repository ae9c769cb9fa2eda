"""Chat templates: how a pair becomes training text, and the same template for inference.

The #1 reason a fine-tuned model answers well in the trainer and badly in
llama.cpp/Ollama is a template mismatch. So one module renders training samples,
inference prompts (smoke tests, chat) and the Ollama Modelfile TEMPLATE, from
the same template family.

Families: chatml, llama2, llama3, alpaca, and 'model' (the tokenizer's own Jinja
template when it matches none of the others). 'auto' picks the base model's own.
BOS is never written into the text: the tokenizer adds it (or not) as its config
says, which is what llama.cpp does with the converted GGUF too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

FAMILIES = ("chatml", "llama2", "llama3", "alpaca", "model")

ALPACA_HEADER = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")


@dataclass
class RenderedSample:
    prompt: str
    """Everything before the answer: system, question and the assistant header. Not trained on."""
    completion: str
    """The answer and the end-of-turn marker. The loss is computed on these tokens only."""


def resolve_family(name: str, tokenizer: Any | None) -> str:
    """The concrete family for a template name; 'auto' reads the tokenizer's own template."""
    if name != "auto":
        return name
    jinja = getattr(tokenizer, "chat_template", None) or ""
    if "<|im_start|>" in jinja:
        return "chatml"
    if "<|start_header_id|>" in jinja:
        return "llama3"
    if "[INST]" in jinja:
        return "llama2"
    if jinja:
        return "model"
    return "chatml"  # a base model with no template of its own: ChatML is the common choice


def render_prompt(family: str, question: str, system: str = "", tokenizer: Any | None = None) -> str:
    """The text a model sees before it answers (inference and training alike)."""
    if family == "chatml":
        head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
        return f"{head}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    if family == "llama3":
        head = f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>" if system else ""
        return (f"{head}<|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n")
    if family == "llama2":
        sys_block = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else ""
        return f"[INST] {sys_block}{question} [/INST]"
    if family == "alpaca":
        return f"{system or ALPACA_HEADER}\n\n### Instruction:\n{question}\n\n### Response:\n"
    if family == "model":
        if tokenizer is None:
            raise ValueError("the 'model' template needs the base model's tokenizer")
        text = tokenizer.apply_chat_template(_messages(question, system), tokenize=False,
                                             add_generation_prompt=True)
        return strip_bos(text, tokenizer)
    raise ValueError(f"unknown template family {family!r} (choose from {', '.join(FAMILIES)})")


def render_sample(family: str, question: str, answer: str, system: str = "",
                  tokenizer: Any | None = None) -> RenderedSample:
    """A training sample: the prompt (masked) and the completion (trained on)."""
    prompt = render_prompt(family, question, system, tokenizer)
    eos = getattr(tokenizer, "eos_token", None) or ""
    if family == "chatml":
        completion = f"{answer}<|im_end|>"
    elif family == "llama3":
        completion = f"{answer}<|eot_id|>"
    elif family in ("llama2", "alpaca"):
        completion = f" {answer}" if family == "llama2" else answer
        completion += eos  # these formats end a turn with the tokenizer's EOS
    else:  # model's own template: render the whole chat and take what follows the prompt
        full = tokenizer.apply_chat_template(_messages(question, system, answer), tokenize=False)
        full = strip_bos(full, tokenizer)
        if not full.startswith(prompt):
            raise ValueError("the model's chat template does not render the prompt as a prefix of the "
                             "whole chat; choose chatml, llama2 or alpaca instead")
        completion = full[len(prompt):].rstrip("\n")
    return RenderedSample(prompt=prompt, completion=completion)


def end_of_turn(family: str, tokenizer: Any) -> str:
    """The text that ends an answer in this template (what training taught the model to emit)."""
    sample = render_sample(family, "Q", "ANSWER", "", tokenizer)
    return sample.completion.split("ANSWER", 1)[1].strip() or (tokenizer.eos_token or "")


def stop_token_ids(family: str, tokenizer: Any) -> list[int]:
    """Token ids generation stops at: the end-of-turn token and EOS."""
    ids = []
    marker = end_of_turn(family, tokenizer)
    if marker:
        encoded = tokenizer(marker, add_special_tokens=False)["input_ids"]
        if len(encoded) == 1:
            ids.append(encoded[0])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def cut_at_stops(text: str, stops: Iterable[str]) -> str:
    """The answer up to the first stop string, trimmed."""
    for stop in stops:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


def strip_bos(text: str, tokenizer: Any) -> str:
    """Drop a literal BOS a Jinja template wrote: the tokenizer adds its own, and two is a known bug."""
    bos = getattr(tokenizer, "bos_token", None)
    return text[len(bos):] if bos and text.startswith(bos) else text


def _messages(question: str, system: str, answer: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


@dataclass
class TokenizedSample:
    input_ids: list[int]
    labels: list[int]
    """-100 for prompt tokens (no loss), the token id for answer tokens."""
    truncated: bool


def tokenize_sample(tokenizer: Any, sample: RenderedSample, max_len: int) -> TokenizedSample | None:
    """Token ids and labels of a sample, cut to `max_len`; None when no answer token would remain."""
    prompt_ids = tokenizer(sample.prompt, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(sample.completion, add_special_tokens=False)["input_ids"]
    ids = prompt_ids + completion_ids
    labels = [-100] * len(prompt_ids) + completion_ids
    truncated = len(ids) > max_len
    ids, labels = ids[:max_len], labels[:max_len]
    if all(label == -100 for label in labels):
        return None
    return TokenizedSample(input_ids=ids, labels=labels, truncated=truncated)


# ---------------------------------------------------------------- Ollama

OLLAMA_TEMPLATES: dict[str, tuple[str, list[str]]] = {
    "chatml": (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n",
        ["<|im_start|>", "<|im_end|>"]),
    "llama3": (
        "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>",
        ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
    "llama2": (
        "[INST] {{ if .System }}<<SYS>>\n{{ .System }}\n<</SYS>>\n\n{{ end }}{{ .Prompt }} [/INST] {{ .Response }}",
        ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"]),
    "alpaca": (
        "{{ if .System }}{{ .System }}{{ else }}" + ALPACA_HEADER + "{{ end }}\n\n"
        "### Instruction:\n{{ .Prompt }}\n\n### Response:\n{{ .Response }}",
        ["### Instruction:", "### Response:"]),
}


def ollama_template(family: str) -> tuple[str, list[str]]:
    """The Modelfile TEMPLATE and stop strings matching a training family."""
    if family not in OLLAMA_TEMPLATES:
        raise ValueError(f"no Ollama template for the '{family}' family; train with chatml, llama2, "
                         "llama3 or alpaca to export a Modelfile")
    return OLLAMA_TEMPLATES[family]


# ---------------------------------------------------------------- Hugging Face / GGUF chat template

_JINJA_TEMPLATES: dict[str, str] = {
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    "llama3": (
        "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"),
    "llama2": (
        "{% set ns = namespace(system='') %}{% for m in messages %}"
        "{% if m['role'] == 'system' %}{% set ns.system = m['content'] %}"
        "{% elif m['role'] == 'user' %}[INST] {% if ns.system %}<<SYS>>\n{{ ns.system }}\n<</SYS>>\n\n"
        "{% set ns.system = '' %}{% endif %}{{ m['content'] }} [/INST]"
        "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"),
    "alpaca": (
        "{% set ns = namespace(system='" + ALPACA_HEADER + "', started=false) %}{% for m in messages %}"
        "{% if m['role'] == 'system' %}{% set ns.system = m['content'] %}"
        "{% elif m['role'] == 'user' %}{% if not ns.started %}{{ ns.system }}\n\n{% set ns.started = true %}"
        "{% endif %}### Instruction:\n{{ m['content'] }}\n\n### Response:\n"
        "{% else %}{{ m['content'] }}{{ eos_token }}\n\n{% endif %}{% endfor %}"),
}


def hf_chat_template(family: str) -> str | None:
    """The Jinja chat template an exported model carries (tokenizer and GGUF), rendering exactly
    what render_prompt renders; None for 'model' (the tokenizer's own template is kept)."""
    if family == "model":
        return None
    if family not in _JINJA_TEMPLATES:
        raise ValueError(f"unknown template family {family!r} (choose from {', '.join(FAMILIES)})")
    return _JINJA_TEMPLATES[family]
