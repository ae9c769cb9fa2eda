"""`tunewiz preview`: one training sample exactly as the engine renders and masks it."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from tunewiz.errors import TunewizError
from tunewiz.project import Project


def load_tokenizer(project: Project):
    """The base model's tokenizer (converting a GGUF base into the cache the first time)."""
    from transformers import AutoTokenizer

    from tunewiz.basemodel import resolve_base

    base = project.config.base_model
    folder = resolve_base(base.model, base.gguf_file, project.root,
                          progress=lambda text: print(text, file=sys.stderr))
    return AutoTokenizer.from_pretrained(str(folder))


@dataclass
class Preview:
    """One training sample as the engine renders, masks and cuts it, and the counts of the whole run.

    `tunewiz preview` prints `lines()`; the Format step shows the same fields."""

    pair_id: str
    index: int
    train_pairs: int
    validation_pairs: int
    family: str
    auto_template: bool
    kind: str
    max_seq_len: int
    prompt: str
    completion: str
    segments: list[tuple[str, bool, int]]
    """(text, trained on, tokens) in order: prompt, answer, ... (an earlier answer may be masked)."""
    state: str
    """ok, truncated (cut to max_seq_len) or dropped (the prompt alone is too long)."""
    truncated: int
    """Of every sample the run tokenizes (train and validation): cut to max_seq_len."""
    dropped: int
    lengths: list[int]

    @property
    def total_tokens(self) -> int:
        return sum(count for _, _, count in self.segments)

    @property
    def trained_tokens(self) -> int:
        return sum(count for _, trained, count in self.segments if trained)

    @property
    def prompt_tokens(self) -> int:
        return self.total_tokens - self.segments[-1][2]

    @property
    def answer_tokens(self) -> int:
        return self.segments[-1][2]

    def lines(self) -> list[str]:
        origin = " (the base model's own)" if self.auto_template else ""
        lines = [f"Pair {self.pair_id} (training sample {self.index + 1} of {self.train_pairs}: {self.kind}), "
                 f"template {self.family}{origin}, max_seq_len {self.max_seq_len}"]
        for number, (text, trained, count) in enumerate(self.segments):
            what = "answer: {} tokens, trained on" if trained else "prompt: {} tokens, masked (no loss)"
            if not trained and number % 2:  # segments alternate prompt, answer: an answer given weight 0
                what = "answer: {} tokens, masked (weight 0)"
            lines += [f"--- {what.format(count)} ---", text]
        lines.append("---")
        if self.state == "dropped":
            lines.append(f"DROPPED: the prompt alone is longer than max_seq_len ({self.max_seq_len}); "
                         "no answer token would be trained")
        elif self.state == "truncated":
            lines.append(f"TRUNCATED: {self.total_tokens} tokens, the last {self.total_tokens - self.max_seq_len} "
                         "are cut to max_seq_len")
        else:
            lines.append(f"{self.total_tokens} tokens in all, {self.trained_tokens} of them trained on")
        if self.lengths:
            lines.append(f"All {self.train_pairs} training and {self.validation_pairs} validation pairs: "
                         f"{self.truncated} truncated, {self.dropped} dropped; tokens per sample min "
                         f"{min(self.lengths)}, mean {sum(self.lengths) / len(self.lengths):.0f}, "
                         f"max {max(self.lengths)}")
        return lines


def preview(project: Project, index: int = 0) -> Preview:
    """Training sample `index` (0: the first), rendered with the base model's tokenizer."""
    from tunewiz.dataset import project_split
    from tunewiz.templates import render_sample, resolve_family, tokenize_sample
    from tunewiz.training.data import tokenize_records

    train, validation = project_split(project)
    if not train:
        raise TunewizError(f"{project.pairs_path}: no pairs to train on (import or generate some)")
    if not 0 <= index < len(train):
        raise TunewizError(f"--index {index}: the project has {len(train)} training pairs (0 to {len(train) - 1})")
    pair = train[index]
    tokenizer = load_tokenizer(project)
    cfg = project.config.template
    family = resolve_family(cfg.name, tokenizer)
    sample = render_sample(family, pair.question, pair.answer, pair.system or cfg.system_prompt, tokenizer,
                           pair.history)
    tokens = tokenize_sample(tokenizer, sample, cfg.max_seq_len)
    segments = [(text, trained, len(tokenizer(text, add_special_tokens=number == 0)["input_ids"]))
                for number, (text, trained) in enumerate(sample.segments)]
    # The counts of what the run will tokenize: its train and its validation samples.
    records = [{"question": p.question, "answer": p.answer, "system": p.system, "history": p.history}
               for p in train + validation]
    whole = tokenize_records(records, tokenizer, family, cfg.system_prompt, cfg.max_seq_len)
    return Preview(pair_id=pair.id, index=index, train_pairs=len(train), validation_pairs=len(validation),
                   family=family, auto_template=cfg.name == "auto",
                   kind=f"a conversation of {pair.turns} turns" if pair.history else "a QA pair",
                   max_seq_len=cfg.max_seq_len, prompt=sample.prompt, completion=sample.completion,
                   segments=segments,
                   state="dropped" if tokens is None else "truncated" if tokens.truncated else "ok",
                   truncated=whole.truncated, dropped=whole.dropped,
                   lengths=[len(e.input_ids) for e in whole.examples])
