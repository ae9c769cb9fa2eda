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

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

FAMILIES = ("chatml", "llama2", "llama3", "alpaca", "model")

ALPACA_HEADER = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")


@dataclass
class RenderedSample:
    prompt: str
    """Everything before the final answer: system, earlier turns, the question and the assistant header."""
    completion: str
    """The final answer and the end-of-turn marker."""
    segments: list[tuple[str, bool]] = field(default_factory=list)
    """The whole sample in order as (text, trained): for a conversation the loss covers every
    assistant turn (each answer and its end marker) but for turns given weight 0; one turn is
    [(prompt, False), (completion, True)]."""

    def __post_init__(self) -> None:
        if not self.segments:
            self.segments = [(self.prompt, False), (self.completion, True)]


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
                  tokenizer: Any | None = None, history: Sequence[dict[str, Any]] = ()) -> RenderedSample:
    """A training sample: prompts (masked) and answers (trained on).

    `history` holds the turns before the final question, as {"role": "user"|"assistant",
    "content": ..., "weight": 0 (optional: not trained)} alternating from a user turn."""
    exchanges = [(history[i]["content"], history[i + 1]["content"], history[i + 1].get("weight", 1) != 0)
                 for i in range(0, len(history), 2)] + [(question, answer, True)]
    if family == "model":
        return _render_with_model_template(exchanges, system, tokenizer)
    segments: list[tuple[str, bool]] = []
    for number, (user, reply, trained) in enumerate(exchanges):
        segments.append((_turn_prompt(family, user, system, tokenizer, first=number == 0), False))
        segments.append((_turn_completion(family, reply, tokenizer), trained))
    return RenderedSample(prompt="".join(text for text, _ in segments[:-1]), completion=segments[-1][0],
                          segments=segments)


def _turn_prompt(family: str, question: str, system: str, tokenizer: Any, first: bool) -> str:
    """What comes before one answer: the first turn carries the system prompt; later turns continue
    the chat exactly as the exported template (hf_chat_template) renders it."""
    if first:
        return render_prompt(family, question, system, tokenizer)
    if family == "chatml":
        return "\n" + render_prompt(family, question)
    if family == "llama2":  # every turn is its own <s>[INST] ... [/INST] ...</s>
        return (getattr(tokenizer, "bos_token", None) or "<s>") + render_prompt(family, question)
    if family == "alpaca":
        return f"\n\n### Instruction:\n{question}\n\n### Response:\n"
    return render_prompt(family, question)  # llama3: turns follow each other directly


def _turn_completion(family: str, answer: str, tokenizer: Any) -> str:
    eos = getattr(tokenizer, "eos_token", None) or ""
    if family == "chatml":
        return f"{answer}<|im_end|>"
    if family == "llama3":
        return f"{answer}<|eot_id|>"
    if family == "llama2":
        return f" {answer}{eos}"  # these formats end a turn with the tokenizer's EOS
    if family == "alpaca":
        return answer + eos
    raise ValueError(f"unknown template family {family!r} (choose from {', '.join(FAMILIES)})")


def _render_with_model_template(exchanges, system: str, tokenizer: Any) -> RenderedSample:
    """The base model's own Jinja template: render the chat up to each answer and after it, and take
    the differences as segments. A template that does not render earlier turns as a prefix of later
    ones cannot be masked per turn: that is an error, not a guess."""
    if tokenizer is None:
        raise ValueError("the 'model' template needs the base model's tokenizer")
    messages = [{"role": "system", "content": system}] if system else []
    segments: list[tuple[str, bool]] = []
    done = ""
    for user, reply, trained in exchanges:
        messages.append({"role": "user", "content": user})
        prompt = strip_bos(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
                           tokenizer)
        messages.append({"role": "assistant", "content": reply})
        full = strip_bos(tokenizer.apply_chat_template(messages, tokenize=False), tokenizer).rstrip("\n")
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ValueError("the model's chat template does not render the prompt as a prefix of the "
                             "whole chat; choose chatml, llama2, llama3 or alpaca instead")
        segments += [(prompt[len(done):], False), (full[len(prompt):], trained)]
        done = full
    return RenderedSample(prompt="".join(text for text, _ in segments[:-1]), completion=segments[-1][0],
                          segments=segments)


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
    """Token ids and labels of a sample, cut to `max_len`; None when no trained token would remain.

    Each segment is tokenized on its own (the first with the tokenizer's BOS), so a mask never
    straddles a token."""
    ids: list[int] = []
    labels: list[int] = []
    for number, (text, trained) in enumerate(sample.segments):
        piece = tokenizer(text, add_special_tokens=number == 0)["input_ids"]
        ids += piece
        labels += piece if trained else [-100] * len(piece)
    truncated = len(ids) > max_len
    ids, labels = ids[:max_len], labels[:max_len]
    if all(label == -100 for label in labels):
        return None
    return TokenizedSample(input_ids=ids, labels=labels, truncated=truncated)


# ---------------------------------------------------------------- Ollama

# Each loops over the chat's messages exactly as render_sample renders a conversation (LLaMA-Factory's
# form: the system prompt from .System, then the user and assistant turns); "{eos}" is the
# tokenizer's EOS, which llama2 and alpaca turns end with.
OLLAMA_TEMPLATES: dict[str, tuple[str, list[str]]] = {
    "chatml": (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ range .Messages }}{{ if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n"
        "<|im_start|>assistant\n{{ else if eq .Role \"assistant\" }}{{ .Content }}<|im_end|>\n{{ end }}{{ end }}",
        ["<|im_start|>", "<|im_end|>"]),
    "llama3": (
        "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{ range .Messages }}{{ if eq .Role \"user\" }}<|start_header_id|>user<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        "{{ else if eq .Role \"assistant\" }}{{ .Content }}<|eot_id|>{{ end }}{{ end }}",
        ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
    "llama2": (
        "{{ $first := true }}{{ range .Messages }}{{ if eq .Role \"user\" }}{{ if not $first }}<s>{{ end }}"
        "[INST] {{ if and $first $.System }}<<SYS>>\n{{ $.System }}\n<</SYS>>\n\n{{ end }}{{ .Content }} [/INST]"
        "{{ $first = false }}{{ else if eq .Role \"assistant\" }} {{ .Content }}{eos}{{ end }}{{ end }}",
        ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"]),
    "alpaca": (
        "{{ if .System }}{{ .System }}{{ else }}" + ALPACA_HEADER + "{{ end }}"
        "{{ range .Messages }}{{ if eq .Role \"user\" }}\n\n### Instruction:\n{{ .Content }}\n\n### Response:\n"
        "{{ else if eq .Role \"assistant\" }}{{ .Content }}{eos}{{ end }}{{ end }}",
        ["### Instruction:", "### Response:"]),
}


def ollama_template(family: str, eos: str = "</s>") -> tuple[str, list[str]]:
    """The Modelfile TEMPLATE and stop strings matching a training family (`eos`: the tokenizer's)."""
    if family not in OLLAMA_TEMPLATES:
        raise ValueError(f"no Ollama template for the '{family}' family; train with chatml, llama2, "
                         "llama3 or alpaca to export a Modelfile")
    template, stops = OLLAMA_TEMPLATES[family]
    return template.replace("{eos}", eos), stops


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
        "{% elif m['role'] == 'user' %}{% if not loop.first and not (loop.index0 == 1 and messages[0]['role'] == 'system') %}"
        "{{ bos_token }}{% endif %}[INST] {% if ns.system %}<<SYS>>\n{{ ns.system }}\n<</SYS>>\n\n"
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


def template_stops(family: str, tokenizer: Any | None = None) -> list[str]:
    """Stop strings of a family (for llama.cpp and Ollama); 'model' needs the tokenizer."""
    if family in OLLAMA_TEMPLATES:
        return ollama_template(family)[1]
    return [end_of_turn(family, tokenizer)]
