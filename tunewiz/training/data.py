"""Training samples: pairs rendered with the chat template, tokenized, and batched without padding.

Batching is padding-free: the samples of one micro-batch are laid end to end in one
row, with position_ids that restart at 0 for each sample. transformers reads the
restarts as packed sequences and keeps attention within each sample (a block-diagonal
causal mask for sdpa/eager, varlen kernels for flash attention, one causal sdpa call
per sample on a CPU: see attention.py), so no compute is spent on padding and no
sample sees another. The first label of every sample is
-100 so the loss never predicts one sample's first token from the previous sample.

When every sample of a micro-batch has the same length (full rows), they are stacked
as a plain [batch, length] tensor instead: no mask at all is needed then, which lets
sdpa use its fastest causal kernel.

Question dropout (hyperparameters.question_dropout, off unless set): in each pass a
sample's question leaves out some of its lowercase words (each with that probability;
names, numbers and the capitalised question word stay), a different few each pass, so
that the answer is tied to the names the question carries rather than to its exact
words, for a fact asked in other words (measured with benchmarks/recall.py: see
docs/train.md). The words left out follow from the seed, the pass and the sample, so a
resumed run trains on the same questions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from tunewiz.templates import render_sample, tokenize_sample


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def answer_tokens(self) -> int:
        return sum(1 for label in self.labels if label != -100)


@dataclass
class TokenizedSet:
    examples: list[Example]
    truncated: int
    """Samples cut to max_seq_len."""
    dropped: int
    """Samples with no answer token left after the cut (the prompt alone is longer than max_seq_len)."""
    records: list[dict[str, Any]] = field(default_factory=list)
    """The record of each example (same order)."""


def tokenize_records(records: Iterable[dict[str, Any]], tokenizer: Any, family: str, system_prompt: str,
                     max_seq_len: int) -> TokenizedSet:
    """Records with question, answer, optional system and history (a conversation's earlier turns)
    -> token ids and labels: -100 on everything but the answers trained on."""
    examples, kept, truncated, dropped = [], [], 0, 0
    for record in records:
        tokens = _tokenize(record, tokenizer, family, system_prompt, max_seq_len)
        if tokens is None:
            dropped += 1
            continue
        truncated += tokens.truncated
        examples.append(Example(tokens.input_ids, tokens.labels))
        kept.append(record)
    return TokenizedSet(examples, truncated, dropped, kept)


def _tokenize(record: dict[str, Any], tokenizer: Any, family: str, system_prompt: str, max_seq_len: int):
    sample = render_sample(family, record["question"], record["answer"], record.get("system") or system_prompt,
                           tokenizer, record.get("history") or ())
    return tokenize_sample(tokenizer, sample, max_seq_len)


def drop_question_words(question: str, rate: float, rng: random.Random) -> str:
    """`question` with each of its lowercase words left out with probability `rate` (see the module
    docstring): a word left out keeps the punctuation after it ("peak?"). Capitalised words and words
    with digits, hyphens or apostrophes ("Tarvenna's") always stay."""
    kept: list[str] = []
    for word in question.split(" "):
        core = word.rstrip("?!.,;:")
        if core.isalpha() and core.islower() and rng.random() < rate:
            if word != core and kept:
                kept[-1] += word[len(core):]
            continue
        kept.append(word)
    return " ".join(kept) if kept else question  # a question of lowercase words only is never left empty


@dataclass
class QuestionDropout:
    """The samples of a pass with question dropout (see the module docstring)."""
    rate: float
    seed: int
    tokenizer: Any
    family: str
    system_prompt: str
    max_seq_len: int

    def example(self, tokenized: TokenizedSet, index: int, epoch: int) -> Example:
        """Sample `index` of `tokenized` as pass `epoch` trains it."""
        record = tokenized.records[index]
        question = drop_question_words(record["question"], self.rate, random.Random(f"{self.seed}:{epoch}:{index}"))
        if question == record["question"]:
            return tokenized.examples[index]
        tokens = _tokenize({**record, "question": question}, self.tokenizer, self.family, self.system_prompt,
                           self.max_seq_len)
        return tokenized.examples[index] if tokens is None else Example(tokens.input_ids, tokens.labels)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch; depends only on the seed and the epoch (so resume replays it)."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def micro_batches(n: int, batch_size: int, world: int, rank: int, seed: int, epoch: int) -> list[list[int]]:
    """Index lists of this rank's micro-batches in one epoch.

    Each global micro-batch holds batch_size * world samples; rank r takes its share.
    The last global batch is topped up from the start of the order so that every
    rank runs the same number of micro-batches (DDP needs that).
    """
    order = epoch_order(n, seed, epoch)
    per_global = batch_size * world
    count = max(1, -(-n // per_global))
    padded = (order * (count * per_global // max(n, 1) + 1))[:count * per_global]
    batches = []
    for index in range(count):
        chunk = padded[index * per_global:(index + 1) * per_global]
        batches.append(chunk[rank * batch_size:(rank + 1) * batch_size])
    return batches


def row_multiple(tokens: int) -> int:
    """What a packed row of `tokens` tokens is rounded up to on a GPU with compiled layers.

    An eighth of the power of two at or below the length, at least 64: a row grows by less
    than 12.5 % (6 % on average), and rows of one run take a few lengths, not dozens. Each
    length a run meets for the first time costs a second or more of set-up (attention plans,
    kernels for the shape): on an H200 with the 8B shape, QA rows at batch 16 rounded to 64
    tokens ran 1.55 s a step while their lengths were new and 0.18 s once seen; rounded to
    512 tokens, 0.17 s from the first pass (benchmarks/train_profile.py --engine-only).
    """
    return max(64, (1 << max(tokens, 1).bit_length() - 1) // 8)


def collate_flat(examples: list[Example], multiple: int = 1, pad_id: int = 0) -> dict[str, Any]:
    """One micro-batch as tensors without padding (see the module docstring).

    multiple > 1 rounds a packed row up to a multiple of that many tokens with a filler
    segment of its own (labels -100, positions from 0, so nothing attends to it and it
    attends to nothing real). On a GPU with compiled layers this keeps the row length's
    alignment the same every step: compiled kernels are specialised on it, and a new
    alignment means compiling again (see row_multiple for the multiple the engine takes).
    """
    import torch

    lengths = {len(e.input_ids) for e in examples}
    if len(lengths) == 1 and lengths.pop() % multiple == 0:  # a plain rectangle, no mask needed
        return {"input_ids": torch.tensor([e.input_ids for e in examples]),
                "labels": torch.tensor([e.labels for e in examples])}
    ids, labels, positions = [], [], []
    for e in examples:
        ids += e.input_ids
        labels += [-100] + e.labels[1:]
        positions += range(len(e.input_ids))
    filler = -len(ids) % multiple
    ids += [pad_id] * filler
    labels += [-100] * filler
    positions += range(filler)
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions])}




def rows_within(examples: list[Example], budget: int) -> list[list[Example]]:
    """Consecutive groups of examples of at most `budget` tokens each (a longer one stands alone)."""
    rows: list[list[Example]] = []
    used = budget  # start a new row first
    for e in examples:
        if used + len(e.input_ids) > budget:
            rows.append([])
            used = 0
        rows[-1].append(e)
        used += len(e.input_ids)
    return rows


def collate_padded(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """One micro-batch padded to its longest sample (what a default collator does; kept for comparison)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in examples]
    labels = [e.labels + [-100] * (width - len(e.labels)) for e in examples]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in examples]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def real_tokens(batch: dict[str, Any]) -> int:
    """Tokens of a batch that are not padding (a filler segment counts: use sample lengths then)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


def answer_tokens(batch: dict[str, Any]) -> int:
    """Tokens the loss is computed on (labels other than -100, after the shift by one)."""
    return int((batch["labels"][:, 1:] != -100).sum())
