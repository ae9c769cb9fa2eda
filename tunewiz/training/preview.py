"""`tunewiz preview`: one training sample exactly as the engine renders and masks it."""

from __future__ import annotations

import sys

from tunewiz.project import Project


def load_tokenizer(project: Project):
    """The base model's tokenizer (converting a GGUF base into the cache the first time)."""
    from transformers import AutoTokenizer

    from tunewiz.basemodel import resolve_base

    base = project.config.base_model
    folder = resolve_base(base.model, base.gguf_file, project.root,
                          progress=lambda text: print(text, file=sys.stderr))
    return AutoTokenizer.from_pretrained(str(folder))


def preview_sample(project: Project, index: int = 0) -> str:
    from tunewiz.dataset import project_split
    from tunewiz.templates import render_sample, resolve_family, tokenize_sample
    from tunewiz.training.data import tokenize_records

    train, _ = project_split(project)
    pair = train[index]
    tokenizer = load_tokenizer(project)
    cfg = project.config.template
    family = resolve_family(cfg.name, tokenizer)
    system = pair.system or cfg.system_prompt
    sample = render_sample(family, pair.question, pair.answer, system, tokenizer, pair.history)
    tokens = tokenize_sample(tokenizer, sample, cfg.max_seq_len)
    origin = " (the base model's own)" if cfg.name == "auto" else ""
    kind = f"a conversation of {pair.turns} turns" if pair.history else "a QA pair"
    lines = [f"Pair {pair.id} (training sample {index + 1} of {len(train)}: {kind}), template {family}{origin}, "
             f"max_seq_len {cfg.max_seq_len}"]
    total = trained_tokens = 0
    for number, (text, trained) in enumerate(sample.segments):
        count = len(tokenizer(text, add_special_tokens=number == 0)["input_ids"])
        total += count
        trained_tokens += count if trained else 0
        what = "answer: {} tokens, trained on" if trained else "prompt: {} tokens, masked (no loss)"
        if not trained and number % 2:  # segments alternate prompt, answer: an answer given weight 0
            what = "answer: {} tokens, masked (weight 0)"
        lines += [f"--- {what.format(count)} ---", text]
    lines.append("---")
    if tokens is None:
        lines.append(f"DROPPED: the prompt alone is longer than max_seq_len ({cfg.max_seq_len}); "
                     "no answer token would be trained")
    elif tokens.truncated:
        lines.append(f"TRUNCATED: {total} tokens, the last {total - cfg.max_seq_len} are cut to max_seq_len")
    else:
        lines.append(f"{total} tokens in all, {trained_tokens} of them trained on")
    records = [{"question": p.question, "answer": p.answer, "system": p.system, "history": p.history} for p in train]
    whole = tokenize_records(records, tokenizer, family, cfg.system_prompt, cfg.max_seq_len)
    lengths = [len(e.input_ids) for e in whole.examples]
    if lengths:
        lines.append(f"All {len(train)} training pairs: {whole.truncated} truncated, {whole.dropped} dropped; "
                     f"tokens per sample min {min(lengths)}, mean {sum(lengths) / len(lengths):.0f}, "
                     f"max {max(lengths)}")
    return "\n".join(lines)
