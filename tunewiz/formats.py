"""Reading and writing QA pairs in the formats people bring and take away.

In: CSV (Question/Answer columns in any case, or instruction/output, prompt/response),
JSONL (any of the record shapes below, one per line), Alpaca JSON (a list of
instruction/input/output), ShareGPT (`conversations` of from/value turns, JSON or
JSONL) and OpenAI chat JSONL (`messages` of role/content).

Out: csv, jsonl, alpaca, sharegpt, openai.

A bad row never stops an import: it is reported with its line (or item) number and
skipped, and the good rows come through. A file that cannot be read at all (empty,
binary, broken JSON document, text in an encoding other than UTF-8 or one its
byte-order mark names) is one clear error naming the file; `encoding=` reads
text in another encoding when the user says which.
"""

from __future__ import annotations

import csv
import errno
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

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

BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"),  # before UTF-16's: same start
        (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"), (b"\xef\xbb\xbf", "utf-8"))
"""Byte-order marks and the encodings they announce (what spreadsheets write as "Unicode text")."""


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or a FormatError that says why not (a folder, a symlink loop, no permission)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a folder; give the file of pairs inside it") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FormatError(f"{path}: a symbolic link that points back to itself (a loop)") from None
        raise FormatError(f"{path}: cannot read ({exc.strerror})") from None


def _read_text(path: Path, encoding: str | None = None) -> str:
    """The file's text, decoded by its byte-order mark, by `encoding`, or as UTF-8.

    Text in another encoding is an error naming the likely one: a silent guess would import
    wrong characters."""
    data = _read_bytes(path)
    if not data.strip():
        raise FormatError(f"{path}: the file is empty")
    if encoding:
        try:
            return data.decode(encoding).removeprefix("\ufeff")
        except LookupError:
            raise FormatError(f"{encoding!r}: not an encoding Python knows (e.g. utf-16, cp1252, latin-1)") from None
        except UnicodeDecodeError as exc:
            raise FormatError(f"{path}: byte {exc.start} is not {encoding} text ({exc.reason})") from None
    for bom, name in BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(name)
            except UnicodeDecodeError as exc:
                raise FormatError(f"{path}: starts as {name} text but byte {exc.start} is not ({exc.reason})") from None
    head = data[:8192]
    if b"\x00" in head:
        if head[1::2].count(0) > len(head) // 4 or head[0::2].count(0) > len(head) // 4:
            raise FormatError(f"{path}: looks like UTF-16 text without a byte-order mark; import it with "
                              "`--encoding utf-16-le` (or utf-16-be)")
        raise FormatError(f"{path}: looks like a binary file, not text (CSV, JSON or JSONL expected)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        guess = _likely_encoding(data)
        raise FormatError(f"{path}: line {line}: not UTF-8 text (byte {exc.start}); it looks like {guess}. "
                          f"Import it with `--encoding {guess}`, or save it as UTF-8") from None


def _likely_encoding(data: bytes) -> str:
    """A likely name for text that is not UTF-8, to suggest (never used without the user saying so)."""
    try:
        data.decode("cp1252")
        return "cp1252"  # Windows' Western European; a superset of latin-1 for text
    except UnicodeDecodeError:
        return "latin-1"


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


def _pairs_of(triples: list[tuple[str, str, str]], source: str, where: str) -> Iterator[Pair | RowProblem]:
    for system, question, answer in triples:
        if not question.strip():
            yield RowProblem(where, "the question is empty")
        elif not answer.strip():
            yield RowProblem(where, "the answer is empty")
        else:
            yield Pair(question=question.strip(), answer=answer.strip(), system=system.strip(), source=source)


def iter_csv(path: Path, encoding: str | None = None) -> Iterator[Pair | RowProblem]:
    lines = _read_text(path, encoding).splitlines(keepends=True)  # the text itself is not kept
    reader = csv.reader(iter(lines), strict=True)
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise FormatError(f"{path}: line 1: cannot read the header ({exc})") from None
    columns = [h.strip().lower() for h in header]
    q_col = next((columns.index(c) for c in QUESTION_COLUMNS if c in columns), None)
    a_col = next((columns.index(c) for c in ANSWER_COLUMNS if c in columns), None)
    if q_col is None or a_col is None:
        raise FormatError(f"{path}: line 1: expected a Question and an Answer column "
                          f"(or instruction/output, prompt/response); found {', '.join(header)}")
    s_col = columns.index("system") if "system" in columns else None
    in_col = columns.index("input") if "input" in columns and columns[q_col] == "instruction" else None
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
            yield RowProblem(f"line {start}", f"broken quoting ({exc})")
            line = start
            reader = csv.reader(iter(lines[line:]), strict=True)
            base = line
            continue
        line = reader.line_num + base
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {start}"
        if len(row) <= max(q_col, a_col):
            yield RowProblem(where, f"only {len(row)} columns; the answer is missing")
            continue
        question = row[q_col]
        if in_col is not None and in_col < len(row) and row[in_col].strip():
            question = f"{question}\n\n{row[in_col]}"
        system = row[s_col] if s_col is not None and s_col < len(row) else ""
        yield from _pairs_of([(system, question, row[a_col])], f"{path.name}:{start}", where)


def iter_jsonl(path: Path, encoding: str | None = None) -> Iterator[Pair | RowProblem]:
    for number, line in enumerate(_read_text(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
            triples = pairs_from_record(record)
        except json.JSONDecodeError as exc:
            yield RowProblem(where, f"not valid JSON ({exc.msg})")
            continue
        except ValueError as exc:
            yield RowProblem(where, str(exc))
            continue
        yield from _pairs_of(triples, f"{path.name}:{number}", where)


def iter_json(path: Path, encoding: str | None = None) -> Iterator[Pair | RowProblem]:
    """A JSON document: a list of records (Alpaca, ShareGPT, or QA objects)."""
    text = _read_text(path, encoding)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    del text
    if isinstance(document, dict):
        document = next((v for v in document.values() if isinstance(v, list)), [document])
    if not isinstance(document, list):
        raise FormatError(f"{path}: expected a JSON list of records")
    for number, record in enumerate(document, start=1):
        where = f"item {number}"
        try:
            triples = pairs_from_record(record)
        except ValueError as exc:
            yield RowProblem(where, str(exc))
            continue
        yield from _pairs_of(triples, f"{path.name}#{number}", where)


def read_pairs(path: str | Path, encoding: str | None = None) -> ReadResult:
    """Read any supported file, choosing the reader by extension (and content for .json).

    `encoding` is for text that is neither UTF-8 nor marked by a byte-order mark."""
    result = ReadResult()
    for item in iter_pairs(path, encoding):
        (result.problems if isinstance(item, RowProblem) else result.pairs).append(item)
    return result


def iter_pairs(path: str | Path, encoding: str | None = None) -> Iterator[Pair | RowProblem]:
    """The pairs and bad rows of a file one by one, in file order (imports stream through this).

    Errors about the whole file (FormatError) come before the first item."""
    path = Path(path)
    _read_bytes_check(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        reader = iter_csv
    elif suffix in (".jsonl", ".ndjson"):
        reader = iter_jsonl
    elif suffix == ".json":
        # A list is one JSON document; an object per line is JSONL saved as .json.
        head = _read_text(path, encoding).lstrip()[:1]
        reader = iter_json if head == "[" or (head == "{" and _is_one_document(path, encoding)) else iter_jsonl
    else:
        raise FormatError(f"{path}: unknown file type '{suffix or '(no extension)'}' "
                          "(expected .csv, .jsonl or .json)")
    yield from reader(path, encoding)


def _read_bytes_check(path: Path) -> None:
    """The errors of a path that is not a readable file, before its name is looked at."""
    try:
        with path.open("rb"):
            pass
    except OSError:
        _read_bytes(path)  # raises the FormatError that says why


def _is_one_document(path: Path, encoding: str | None) -> bool:
    try:
        json.loads(_read_text(path, encoding))
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
