"""Reading and writing QA pairs in the formats people bring and take away.

In: CSV (Question/Answer columns in any case, or instruction/output, prompt/response),
JSONL (any of the record shapes below, one per line), Alpaca JSON (a list of
instruction/input/output), ShareGPT (`conversations` of from/value turns, JSON or
JSONL) and OpenAI chat JSONL (`messages` of role/content).

Out: csv, jsonl, alpaca, sharegpt, openai.

A bad row never stops an import: it is reported with its line (or item) number and
skipped, and the good rows come through. A file that cannot be read at all (empty,
binary, broken JSON document) is one clear error naming the file.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tunewiz.dataset import Pair
from tunewiz.errors import TunewizError

EXPORT_FORMATS = ("csv", "jsonl", "alpaca", "sharegpt", "openai")

QUESTION_COLUMNS = ("question", "instruction", "prompt", "input_text", "query")
ANSWER_COLUMNS = ("answer", "output", "response", "completion")


class FormatError(TunewizError):
    """A file that cannot be read as QA pairs at all."""


@dataclass
class RowProblem:
    where: str
    """'line 12' or 'item 3'."""
    reason: str


@dataclass
class ReadResult:
    pairs: list[Pair] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


# ---------------------------------------------------------------- reading

def _read_text(path: Path) -> tuple[str, bool]:
    """The file's text and whether every byte was valid UTF-8 (bad bytes kept as surrogates)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror})") from None
    if not data.strip():
        raise FormatError(f"{path}: the file is empty")
    if b"\x00" in data[:8192]:
        raise FormatError(f"{path}: looks like a binary file, not text (CSV, JSON or JSONL expected)")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="surrogateescape"), False


def _has_bad_bytes(*texts: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for t in texts for ch in t)


def _pick(record: dict[str, Any], names: Iterable[str]) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in record.items()}
    for name in names:
        if name in lowered and lowered[name] is not None:
            return str(lowered[name])
    return None


def pairs_from_record(record: Any) -> list[tuple[str, str, str]]:
    """(system, question, answer) triples from one JSON record of any known shape.

    Raises ValueError naming what is missing.
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    lowered = {str(k).lower(): v for k, v in record.items()}
    if "messages" in lowered:
        turns = [(m.get("role"), m.get("content")) for m in _turn_list(lowered["messages"], "messages")]
        return _exchanges(turns, user="user", assistant="assistant", system="system")
    if "conversations" in lowered:
        turns = [(m.get("from"), m.get("value")) for m in _turn_list(lowered["conversations"], "conversations")]
        turns = [({"user": "human", "assistant": "gpt"}.get(r, r), c) for r, c in turns]
        return _exchanges(turns, user="human", assistant="gpt", system="system")
    system = _pick(record, ("system",)) or ""
    if "instruction" in lowered and "output" in lowered:  # Alpaca
        question = str(lowered["instruction"] or "")
        extra = str(lowered.get("input") or "")
        if extra.strip():
            question = f"{question}\n\n{extra}"
        answer = str(lowered["output"] or "")
    else:
        question = _pick(record, QUESTION_COLUMNS)
        answer = _pick(record, ANSWER_COLUMNS)
        if question is None:
            raise ValueError("no question field (question, instruction, prompt, messages or conversations)")
        if answer is None:
            raise ValueError("no answer field (answer, output, response)")
    return [(system, question, answer)]


def _turn_list(value: Any, name: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise ValueError(f"'{name}' must be a list of objects")
    return value


def _exchanges(turns: list[tuple[Any, Any]], user: str, assistant: str, system: str) -> list[tuple[str, str, str]]:
    """Each user turn followed by an assistant turn becomes one pair; the system turn applies to all."""
    sys_prompt = ""
    found = []
    pending_question = None
    for role, content in turns:
        text = "" if content is None else str(content)
        if role == system:
            sys_prompt = text
        elif role == user:
            pending_question = text
        elif role == assistant and pending_question is not None:
            found.append((sys_prompt, pending_question, text))
            pending_question = None
    if not found:
        raise ValueError(f"no {user} turn followed by an {assistant} turn")
    return found


def _make_pairs(triples: list[tuple[str, str, str]], source: str, where: str,
                result: ReadResult) -> None:
    for system, question, answer in triples:
        if _has_bad_bytes(system, question, answer):
            result.problems.append(RowProblem(where, "not valid UTF-8 text (wrong encoding?)"))
        elif not question.strip():
            result.problems.append(RowProblem(where, "the question is empty"))
        elif not answer.strip():
            result.problems.append(RowProblem(where, "the answer is empty"))
        else:
            result.pairs.append(Pair(question=question.strip(), answer=answer.strip(),
                                     system=system.strip(), source=source))


def read_csv(path: Path) -> ReadResult:
    text, _ = _read_text(path)
    result = ReadResult()
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise FormatError(f"{path}: line 1: cannot read the header ({exc})") from None
    columns = [h.strip().lower() for h in header]
    q_col = next((columns.index(c) for c in QUESTION_COLUMNS if c in columns), None)
    a_col = next((columns.index(c) for c in ANSWER_COLUMNS if c in columns), None)
    if q_col is None or a_col is None:
        raise FormatError(f"{path}: line 1: expected a Question and an Answer column "
                          f"(or instruction/output, prompt/response); found {', '.join(header)}")
    s_col = columns.index("system") if "system" in columns else None
    in_col = columns.index("input") if "input" in columns and columns[q_col] == "instruction" else None
    lines = text.splitlines(keepends=True)
    line = reader.line_num  # physical lines consumed so far
    base = 0  # physical lines skipped before the current reader started
    while line < len(lines):
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # Report the row, then carry on reading from the line after the one it started on.
            result.problems.append(RowProblem(f"line {start}", f"broken quoting ({exc})"))
            line = start
            reader = csv.reader(io.StringIO("".join(lines[line:]), newline=""), strict=True)
            base = line
            continue
        line = reader.line_num + base
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {start}"
        if len(row) <= max(q_col, a_col):
            result.problems.append(RowProblem(where, f"only {len(row)} columns; the answer is missing"))
            continue
        question = row[q_col]
        if in_col is not None and in_col < len(row) and row[in_col].strip():
            question = f"{question}\n\n{row[in_col]}"
        system = row[s_col] if s_col is not None and s_col < len(row) else ""
        _make_pairs([(system, question, row[a_col])], f"{path.name}:{start}", where, result)
    return result


def read_jsonl(path: Path) -> ReadResult:
    text, _ = _read_text(path)
    result = ReadResult()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
            triples = pairs_from_record(record)
        except json.JSONDecodeError as exc:
            result.problems.append(RowProblem(where, f"not valid JSON ({exc.msg})"))
            continue
        except ValueError as exc:
            result.problems.append(RowProblem(where, str(exc)))
            continue
        _make_pairs(triples, f"{path.name}:{number}", where, result)
    return result


def read_json(path: Path) -> ReadResult:
    """A JSON document: a list of records (Alpaca, ShareGPT, or QA objects)."""
    text, _ = _read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(document, dict):
        document = next((v for v in document.values() if isinstance(v, list)), [document])
    if not isinstance(document, list):
        raise FormatError(f"{path}: expected a JSON list of records")
    result = ReadResult()
    for number, record in enumerate(document, start=1):
        where = f"item {number}"
        try:
            triples = pairs_from_record(record)
        except ValueError as exc:
            result.problems.append(RowProblem(where, str(exc)))
            continue
        _make_pairs(triples, f"{path.name}#{number}", where, result)
    return result


def read_pairs(path: str | Path) -> ReadResult:
    """Read any supported file, choosing the reader by extension (and content for .json)."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return read_csv(path)
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(path)
    if suffix == ".json":
        # A list is one JSON document; an object per line is JSONL saved as .json.
        text, _ = _read_text(path)
        first = text.lstrip()[:1]
        return read_json(path) if first == "[" or (first == "{" and _is_one_document(text)) else read_jsonl(path)
    raise FormatError(f"{path}: unknown file type '{suffix}' (expected .csv, .jsonl or .json)")


def _is_one_document(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except json.JSONDecodeError:
        return False


# ---------------------------------------------------------------- writing

def export_records(pairs: Iterable[Pair], fmt: str, default_system: str = "") -> list[Any]:
    out: list[Any] = []
    for p in pairs:
        system = p.system or default_system
        if fmt == "jsonl":
            out.append({"id": p.id, "question": p.question, "answer": p.answer, "system": p.system,
                        "source": p.source, "status": p.status, "scores": p.scores})
        elif fmt == "alpaca":
            out.append({"instruction": p.question, "input": "", "output": p.answer}
                       | ({"system": system} if system else {}))
        elif fmt == "sharegpt":
            turns = ([{"from": "system", "value": system}] if system else []) + [
                {"from": "human", "value": p.question}, {"from": "gpt", "value": p.answer}]
            out.append({"conversations": turns})
        elif fmt == "openai":
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}]
            out.append({"messages": messages})
        else:
            raise ValueError(f"unknown format {fmt!r}")
    return out


def write_pairs(pairs: Iterable[Pair], path: str | Path, fmt: str, default_system: str = "") -> int:
    """Write pairs to a file in one of EXPORT_FORMATS (atomically); returns how many."""
    from tunewiz.project import atomic_write_text

    if fmt not in EXPORT_FORMATS:
        raise FormatError(f"unknown format '{fmt}' (choose from {', '.join(EXPORT_FORMATS)})")
    pairs = list(pairs)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["Question", "Answer", "System", "Status", "Source", "Id"])
        for p in pairs:
            writer.writerow([p.question, p.answer, p.system, p.status, p.source, p.id])
        text = buffer.getvalue()
    elif fmt == "alpaca":
        text = json.dumps(export_records(pairs, fmt, default_system), ensure_ascii=False, indent=2) + "\n"
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n"
                       for r in export_records(pairs, fmt, default_system))
    atomic_write_text(Path(path), text)
    return len(pairs)
