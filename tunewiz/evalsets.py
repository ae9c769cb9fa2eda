"""What a run is judged by, beside the pairs: reworded questions, everyday prompts, the kind of data.

- **Reworded questions** (`data/rewordings.jsonl`): for a trained pair, a question that asks
  for the same fact in other words, with the pair's answer as the reference. Each has a use:
  `check` (the default) is asked by the recall check and never trained on; `train` is trained
  as one more question for the pair's answer (a fact taught in several wordings is recalled
  far better when asked in new ones: docs/train.md) and never asked. A question that trains
  is never asked by the check (`check_texts_to_skip`). Each is linked to its pair by id and remembers the
  question it was made from: editing that question or rejecting the pair retires it. They come
  from the generator, from a file, or (checks only) from deterministic rules (`rule_rewording`),
  so the signal never depends on a weak model. The journal works like the pairs' one: one
  appended line per change, the last line of an id wins, a torn last line is skipped.
- **Everyday prompts** (`GENERAL_PROMPTS`): a few questions unrelated to any user's data;
  a checkpoint whose answers to them break (empty, looping, template text, a training answer
  copied in) has drifted.
The kind of data (`facts` or `skill`) and the split that follows from it live in
`tunewiz.dataset` (`detect_kind`, `project_kind`, `project_split`).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from tunewiz.dataset import Pair, new_pair_id, now_iso, split_position
from tunewiz.errors import TunewizError
from tunewiz.formats import physical_lines
from tunewiz.journal import append_lines, torn_tail_notice
from tunewiz.questions import INSTRUCTION_VERBS, looks_like_question
from tunewiz.scoring import tokens

REWORDINGS_FILE = "data/rewordings.jsonl"
REWORDING_STATUSES = ("pending", "accepted", "rejected")
REWORDING_SOURCES = ("rules", "generator", "file", "edited")
REWORDING_USES = ("check", "train")

GENERAL_PROMPTS = (
    "What is the capital of France?",
    "Give me two tips for sleeping better.",
    "How do I boil an egg?",
    "What is 12 plus 7?",
    "Write one sentence about the ocean.",
    "What does a thermometer measure?",
    "Name three colours of the rainbow.",
    "Why do we need to drink water?",
)



def recall_sample(pairs: list[Pair], limit: int, seed: int) -> list[Pair]:
    """A seeded sample of at most `limit` pairs, stable as pairs are added (by the split hash)."""
    ranked = sorted(pairs, key=lambda p: split_position(p.id, seed + 1))
    return sorted(ranked[:limit], key=lambda p: p.id)


def asked_pairs(pairs: list[Pair], limit: int, seed: int) -> list[Pair]:
    """The pairs a run's recall check asks (`evaluation.questions` of them, seeded by the split seed):
    a question asked alone, since a conversation's last question needs the turns before it."""
    return recall_sample([p for p in pairs if not p.history], limit, seed)


# ---------------------------------------------------------------- rewording by rules

_BE = ("is", "are", "was", "were")
_DO = ("does", "do", "did")
_WH = ("what", "who", "which", "when", "where", "why", "how")
_SYNONYMS = {"founded": "established", "established": "founded", "invented": "created", "created": "made",
             "located": "situated", "called": "named", "largest": "biggest", "biggest": "largest",
             "began": "started", "begin": "start", "built": "constructed", "main": "principal",
             "capital": "capital city", "famous": "best known", "colour": "color", "color": "colour"}
_PARTICIPLE = re.compile(r"(?:ed|en|wn|lt|ght|ung|ade|one)$")
_CLAUSES = re.compile(r"[,;:\u2014\u2013]|\s-\s|\b(?:and|or|but)\b")
"""Marks of a second clause: "What is X, and why?" cannot end in "... why is." """


def rule_rewording(question: str) -> str | None:
    """A deterministic rewording that keeps the meaning, or None when no rule fits.

    "What is the code of X?" -> "Tell me what the code of X is."
    "When was X founded?" -> "Do you know when X was established?"
    "Who invented X?" -> "Do you know who created X?"
    """
    text = " ".join(question.strip().split())
    body = text.rstrip("?.! ")
    words = body.split()
    if len(words) < 2:
        return None
    wh, second = words[0].lower(), words[1].lower()
    rest = words[2:]
    candidate = None
    if wh in _WH and second in _BE and rest:
        if len(rest) >= 2 and _PARTICIPLE.search(rest[-1].lower()):
            subject, verb = rest[:-1], rest[-1]
            candidate = f"Do you know {wh} {' '.join(subject)} {second} {_synonym(verb)}?"
        elif (wh in ("what", "who") and not any(_PARTICIPLE.search(w.lower()) for w in rest[1:])
              and not _CLAUSES.search(" ".join(rest))):  # the verb moves to the end of one clause only
            candidate = f"Tell me {wh} {_swap_synonyms(' '.join(rest))} {second}."
        else:
            candidate = f"I would like to know: {_lower_first(_swap_synonyms(body))}?"
    elif wh in _WH and second in _DO and len(rest) >= 2:
        candidate = f"I would like to know: {_lower_first(_swap_synonyms(body))}?"
    elif wh in ("how",) and second in ("many", "much", "long", "old", "tall", "far", "big") and rest:
        candidate = f"Tell me {_lower_first(_swap_synonyms(body))}."
    elif wh in _WH:
        candidate = f"Do you know {_lower_first(_swap_synonyms(body))}?"
    elif second in _BE + _DO or wh in _BE + _DO + ("can", "has", "have"):
        candidate = f"Tell me: {_lower_first(_swap_synonyms(body))}?"
    elif looks_like_question(text) and body.lower().startswith(INSTRUCTION_VERBS):  # "Name ...", "Explain ..."
        candidate = f"Please {_lower_first(_swap_synonyms(body))}."
    elif text.endswith("?") and looks_like_question(text):  # "Café au lait: what is in it?"
        candidate = f"I would like to know: {_lower_first(_swap_synonyms(body))}?"
    if candidate is None:
        return None
    return candidate if is_good_rewording(candidate, question) else None


def _synonym(word: str) -> str:
    return _SYNONYMS.get(word.lower(), word)


def _swap_synonyms(text: str) -> str:
    """Replace the first word that has a synonym (keeps names, numbers and the rest)."""
    words = text.split()
    for index, word in enumerate(words):
        core = word.strip(",.;:?!")
        if core.lower() in _SYNONYMS and core.islower():
            swapped = _SYNONYMS[core.lower()].split()
            if swapped[0] == core and words[index + 1:index + len(swapped)] == swapped[1:]:
                continue  # "capital city" is no new wording of "capital city"
            words[index] = word.replace(core, _SYNONYMS[core.lower()])
            break
    return " ".join(words)


def _lower_first(text: str) -> str:
    """Lower-case the first word unless it looks like a name (I, an acronym)."""
    first, _, rest = text.partition(" ")
    if first.isupper() and len(first) > 1 or first == "I":
        return text
    return first[:1].lower() + first[1:] + (" " + rest if rest else "")


def is_good_rewording(candidate: str, original: str) -> bool:
    """Still a question or instruction, and not the original with cosmetic changes."""
    return looks_like_question(candidate) and tokens(candidate) != tokens(original)


# ---------------------------------------------------------------- the store

@dataclass
class Rewording:
    """A question asking for a trained pair's fact in other words; the pair's answer is the reference."""

    pair_id: str
    question: str
    made_from: str
    """The pair's question when this was made; a pair whose question changed retires it."""
    source: str = "rules"
    status: str = "pending"
    use: str = "check"
    """check: asked by the recall check, never trained; train: trained with the pair's answer, never asked."""
    id: str = field(default_factory=new_pair_id)
    created: str = field(default_factory=now_iso)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


class RewordingStore:
    """Reads and appends `data/rewordings.jsonl`."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._items: dict[str, Rewording] = {}
        self.torn_lines: list[int] = []
        self.notices: list[str] = []
        if self.path.exists():
            with self.path.open("r", encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                        item = Rewording(**{k: record[k] for k in Rewording.__dataclass_fields__ if k in record})
                    except (ValueError, TypeError, AttributeError):
                        self.torn_lines.append(number)
                        continue
                    self._items[item.id] = item

    def __iter__(self) -> Iterator[Rewording]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def get(self, rewording_id: str) -> Rewording:
        return self._items[rewording_id]

    def _append(self, items: Iterable[Rewording]) -> None:
        items = list(items)
        if not items:
            return
        _, side = append_lines(self.path, (json.dumps(i.to_record(), ensure_ascii=False) + "\n" for i in items))
        if side is not None:
            self.notices.append(torn_tail_notice(self.path, side))
        for item in items:
            self._items[item.id] = item

    def add(self, items: Iterable[Rewording]) -> list[Rewording]:
        items = list(items)
        for item in items:
            if (item.status not in REWORDING_STATUSES or item.source not in REWORDING_SOURCES
                    or item.use not in REWORDING_USES):
                raise ValueError(f"rewording {item.id}: bad status {item.status!r}, source {item.source!r} "
                                 f"or use {item.use!r}")
        self._append(items)
        return items

    def update(self, rewording_id: str, *, question: str | None = None, status: str | None = None) -> Rewording:
        item = self._items[rewording_id]
        if status is not None:
            if status not in REWORDING_STATUSES:
                raise ValueError(f"status must be one of {', '.join(REWORDING_STATUSES)}, got {status!r}")
            item.status = status
        if question is not None and question != item.question:
            item.question, item.source = question, "edited"
        self._append([item])
        return item


def edit_rewording(store: RewordingStore, rewording_id: str, text: str) -> Rewording:
    """Replace a rewording's question (source "edited"), checked as the CLI and the wizard both need."""
    try:
        item = store.get(rewording_id)
    except KeyError:
        raise TunewizError(f"{store.path}: no rewording {rewording_id!r}") from None
    text = " ".join(text.split())
    if not is_good_rewording(text, item.made_from):
        raise TunewizError(f"{text!r}: not a question or instruction, or the same as the pair's question")
    return store.update(rewording_id, question=text)


def live_rewordings(rewordings: Iterable[Rewording], pairs: dict[str, Pair], use: str | None = None) -> list[Rewording]:
    """Rewordings in use (of `use`, or either): not rejected, their pair not rejected and still asking what
    they were made from."""
    return [r for r in rewordings
            if r.status != "rejected" and r.pair_id in pairs and pairs[r.pair_id].status != "rejected"
            and pairs[r.pair_id].question == r.made_from and (use is None or r.use == use)]


def training_samples(rewordings: Iterable[Rewording], train: list[Pair], train_on: str) -> list[Pair]:
    """The `train` rewordings of the pairs in `train`, as samples: the rewording's question, the pair's
    answer and system prompt (the id is the rewording's). Pending ones train as pending pairs do
    (`dataset.train_on`)."""
    by_id = {p.id: p for p in train if not p.history}
    live = [r for r in live_rewordings(rewordings, by_id, "train") if r.status == "accepted" or train_on != "accepted"]
    return [Pair(r.question, by_id[r.pair_id].answer, id=r.id, system=by_id[r.pair_id].system,
                 source=f"rewording of pair {r.pair_id}", status=r.status) for r in live]


def check_texts_to_skip(trained: Iterable[Pair]) -> set[tuple[str, ...]]:
    """Questions the check must not ask, as token tuples: every trained question (pairs and train
    rewordings alike), so a question that trains is never the one that measures recall in new words."""
    return {tuple(tokens(p.question)) for p in trained}


def make_rule_rewordings(store: RewordingStore, pairs: list[Pair]) -> tuple[int, int]:
    """One rule rewording (a check) for each pair that has no live check rewording yet; (added, pairs no
    rule fits)."""
    by_id = {p.id: p for p in pairs}
    covered = {r.pair_id for r in live_rewordings(store, by_id, "check")}
    new, unfit = [], 0
    for pair in pairs:
        if pair.id in covered or pair.history:  # a conversation's question needs its turns: not asked alone
            continue
        text = rule_rewording(pair.question)
        if text is None:
            unfit += 1
            continue
        new.append(Rewording(pair_id=pair.id, question=text, made_from=pair.question, source="rules"))
    store.add(new)
    return len(new), unfit


def import_rewordings(store: RewordingStore, path: Path, pairs: list[Pair],
                      use: str = "check") -> tuple[int, list[str]]:
    """Rewordings of `use` from a CSV (columns `question`, `reworded`) or JSONL (the same keys, or
    `pair_id`).

    `question` names the pair by its question as stored (case and spacing aside). Returns
    (added, problems), each problem naming the file and line."""
    by_question = {" ".join(p.question.lower().split()): p for p in pairs}
    by_id = {p.id: p for p in pairs}
    problems: list[str] = []
    new: list[Rewording] = []
    for line, record in _read_rows(path):
        where = f"{path}:{line}"
        if not isinstance(record, dict):
            problems.append(f"{where}: not an object with 'question' and 'reworded'")
            continue
        reworded = record.get("reworded")
        pair = by_id.get(str(record.get("pair_id", ""))) or by_question.get(
            " ".join(str(record.get("question", "")).lower().split()))
        if not isinstance(reworded, str) or not reworded.strip():
            problems.append(f"{where}: no 'reworded' text")
        elif pair is None:
            problems.append(f"{where}: no pair asks {record.get('question') or record.get('pair_id')!r}")
        elif not is_good_rewording(reworded, pair.question):
            problems.append(f"{where}: {reworded!r} is not a question, or repeats the original")
        else:
            new.append(Rewording(pair_id=pair.id, question=reworded.strip(), made_from=pair.question,
                                 source="file", status="accepted", use=use))
    store.add(new)
    return len(new), problems


def _read_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TunewizError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise TunewizError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(physical_lines(text))
        fields = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
        if "reworded" not in fields or not ({"question", "pair_id"} & fields.keys()):
            raise TunewizError(f"{path}:1: needs a 'reworded' column and a 'question' (or 'pair_id') column")
        for row in reader:
            yield reader.line_num, {key: row.get(name) for key, name in fields.items()}
        return
    for number, line in enumerate(physical_lines(text), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                yield number, f"not JSON ({exc})"
