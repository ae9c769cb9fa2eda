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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

from tunewiz.dataset import STATUSES, Pair, check_history
from tunewiz.errors import FormatError

EXPORT_FORMATS = ("csv", "jsonl", "alpaca", "sharegpt", "openai")

QUESTION_COLUMNS = ("question", "instruction", "prompt", "input_text", "query", "q")
ANSWER_COLUMNS = ("answer", "output", "response", "completion", "a")


@dataclass
class RowProblem:
    where: str
    """'line 12' or 'item 3'."""
    reason: str
    kind: str = "bad rows"
    """What the summary counts it as: 'bad rows', 'image parts', 'tool turns', ..."""
    skipped: bool = True
    """False for a note on a row that was imported anyway."""


class Skipped(ValueError):
    """A sample tunewiz cannot train on (not a broken row): counted by `kind` in the summary."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


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


TEXT_PART_TYPES = ("text", "input_text", "output_text")
MEDIA_PART_TYPES = ("image", "image_url", "input_image", "audio", "input_audio", "file", "video")
TOOL_ROLES = ("tool", "function", "function_call", "observation", "tool_call", "ipython")
PREFERENCE_KEYS = ("chosen", "rejected")


class Sample(NamedTuple):
    """What one record holds: a QA pair, or a conversation (earlier turns in `history`)."""
    system: str
    question: str
    answer: str
    history: list = []


class PreferenceData(ValueError):
    """A record of preference data (chosen/rejected, KTO label): refused once for the whole file."""


class _JsonNumber(float):
    """A JSON number with a fraction or exponent, as written: an answer of 2.50 stays "2.50" (float's
    str would say "2.5", and 1e-7 "1e-07"); everywhere else it is the float it reads as."""

    def __new__(cls, text: str) -> "_JsonNumber":
        number = super().__new__(cls, text)
        number.text = text
        return number


def _json(text: str) -> Any:
    return json.loads(text, parse_float=_JsonNumber)


def _text(value: Any, where: str) -> str:
    """The text of a field: a string, a number, or a list of content parts (OpenAI's
    `[{"type": "text", "text": ...}]`, some trainers write "value"). Anything else is refused,
    never turned into its Python or JSON representation."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, _JsonNumber):
        return value.text
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        texts = []
        for number, part in enumerate(value):
            if isinstance(part, str):
                texts.append(part)
                continue
            kind = part.get("type", "text") if isinstance(part, dict) else None
            if kind in MEDIA_PART_TYPES:
                media = kind.removeprefix("input_").removesuffix("_url")
                raise Skipped(f"{where}[{number}] is an {kind} part: tunewiz trains on text only",
                              f"{media} parts")
            text = part.get("text", part.get("value")) if isinstance(part, dict) else None
            if kind not in TEXT_PART_TYPES or not isinstance(text, str):
                raise ValueError(f"{where}[{number}]: expected a text part, got {_kind_of(part)}")
            texts.append(text)
        return _join_parts(texts)
    raise ValueError(f"{where}: expected text, got {_kind_of(value)}")


def _join_parts(texts: list[str]) -> str:
    """Text parts of one message, one after the other on lines of their own, as vLLM hands them to the model
    ("Part A", "Part B?" is no "Part APart B?"); a part that ends or starts with white space (a sentence
    split in two: "What is ", "Velmora?") joins as it is."""
    joined = ""
    for text in texts:
        glue = "" if not joined or joined[-1].isspace() or not text or text[0].isspace() else "\n"
        joined += glue + text
    return joined


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "an object with " + ", ".join(sorted(map(str, value))[:4]) if value else "an empty object"
    return {bool: "true/false", list: "a list"}.get(type(value), type(value).__name__)


def _pick(record: dict[str, Any], names: Iterable[str]) -> tuple[str, str] | None:
    """(field name, its text) of the first of `names` in the record (any case), or None."""
    lowered = {str(k).strip().lower(): (k, v) for k, v in record.items()}
    for name in names:
        if name in lowered and lowered[name][1] is not None:
            key, value = lowered[name]
            return str(key), _text(value, f"'{key}'")
    return None


def pairs_from_record(record: Any, chosen: bool = False) -> list[tuple[str, str, str]]:
    """The samples (system, question, answer, history) of one JSON record of any known shape.

    Raises ValueError naming the field that is missing or not text. Preference records
    (chosen/rejected, KTO's label) raise PreferenceData, or with `chosen` give their prompt
    and chosen answer (KTO: the completions labelled true; the others give no pair).
    """
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {_kind_of(record)}")
    lowered = {str(k).lower(): v for k, v in record.items()}
    kto = "label" in lowered and "completion" in lowered and isinstance(lowered["label"], bool)
    if all(k in lowered for k in PREFERENCE_KEYS) or kto:
        if not chosen:
            raise PreferenceData("preference data (chosen/rejected answers)")
        if kto and not lowered["label"]:
            return []
        return _chosen_pair(lowered, "completion" if kto else "chosen")
    if "messages" in lowered:
        messages = _turn_list(lowered["messages"], "messages")
        return _exchanges(messages, "messages", ("role", "content"), user="user", assistant="assistant")
    if "conversations" in lowered:
        turns = _turn_list(lowered["conversations"], "conversations")
        return _exchanges(turns, "conversations", ("from", "value"), user="human", assistant="gpt",
                          aliases={"user": "human", "assistant": "gpt"})
    system = _pick(record, ("system",))
    system_text = system[1] if system else ""
    if "instruction" in lowered and "output" in lowered:  # Alpaca
        question = _text(lowered["instruction"], "'instruction'")
        extra = _text(lowered.get("input"), "'input'")
        if extra.strip():
            question = f"{question}\n\n{extra}"
        answer = _text(lowered["output"], "'output'")
    else:
        picked_q = _pick(record, QUESTION_COLUMNS)
        picked_a = _pick(record, ANSWER_COLUMNS)
        if picked_q is None:
            raise ValueError("no question field (question, instruction, prompt, messages or conversations)")
        if picked_a is None:
            raise ValueError("no answer field (answer, output, response)")
        question, answer = picked_q[1], picked_a[1]
        if lowered.get("history"):  # tunewiz's own jsonl export of a conversation
            check_history(lowered["history"], "'history'")
            return [Sample(system_text, question, answer, lowered["history"])]
    return [Sample(system_text, question, answer)]


def _chosen_pair(lowered: dict[str, Any], answer_key: str) -> list[tuple[str, str, str]]:
    """The prompt and the chosen answer of a preference record; either may be text or messages
    (TRL's conversational form: the prompt's user turn, the answer's assistant turn)."""
    prompt, answer = lowered.get("prompt", lowered.get("question")), lowered[answer_key]
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict) and "role" in prompt[0]:
        prompt = next((m.get("content") for m in reversed(prompt) if m.get("role") == "user"), None)
    if isinstance(answer, list) and answer and isinstance(answer[0], dict) and "role" in answer[0]:
        if prompt is None:
            prompt = next((m.get("content") for m in answer if m.get("role") == "user"), None)
        answer = next((m.get("content") for m in reversed(answer) if m.get("role") == "assistant"), None)
    if prompt is None:
        raise ValueError("no prompt for the chosen answer ('prompt', or a user turn in it)")
    return [Sample("", _text(prompt, "'prompt'"), _text(answer, f"'{answer_key}'"))]


def _turn_list(value: Any, name: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise ValueError(f"'{name}' must be a list of objects")
    return value


def _exchanges(turns: list[dict], name: str, keys: tuple[str, str], user: str, assistant: str,
               aliases: dict[str, str] | None = None) -> list[Sample]:
    """A whole conversation as one sample: the system turn, earlier user/assistant turns as history
    and the last exchange as its question and answer. An answer with OpenAI's `weight: 0` stays as
    context, not trained on.

    Tool turns (a tool/function role, or an assistant turn that calls a tool) are refused: the
    templates tunewiz trains with have no tool format."""
    role_key, content_key = keys
    system = ""
    exchanges: list[list] = []  # [question, answer, weight]
    pending = None
    for number, turn in enumerate(turns):
        where = f"'{name}'[{number}]"
        role = turn.get(role_key)
        role = (aliases or {}).get(role, role)
        if role in TOOL_ROLES or turn.get("tool_calls") or turn.get("function_call"):
            raise Skipped(f"{where} is a tool turn ({role or 'tool_calls'}); tunewiz trains without tools",
                          "tool turns")
        text = _text(turn.get(content_key), f"{where}.{content_key}")
        if role == "system":
            if exchanges or pending is not None:
                raise ValueError(f"{where}: a system turn after the conversation began")
            system = text
        elif role == user:
            if pending is not None:
                raise ValueError(f"{where}: two {user} turns in a row (no {assistant} turn between)")
            pending = text
        elif role == assistant:
            if pending is None:
                raise ValueError(f"{where}: an {assistant} turn before any {user} turn")
            exchanges.append([pending, text, 0 if turn.get("weight") == 0 else 1])
            pending = None
        else:
            raise ValueError(f"{where}: unknown role {role!r} (expected system, {user} or {assistant})")
    while exchanges and exchanges[-1][2] == 0:
        exchanges.pop()  # nothing after them is trained: they add nothing
    if not exchanges:
        raise ValueError(f"no {user} turn followed by an {assistant} turn to learn from in '{name}'")
    history = []
    for question, answer, weight in exchanges[:-1]:
        history += [{"role": "user", "content": question},
                    {"role": "assistant", "content": answer} | ({"weight": 0} if not weight else {})]
    return [Sample(system, exchanges[-1][0], exchanges[-1][1], history)]


_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")


def physical_lines(text: str) -> list[str]:
    """The lines of a text file, each with its ending: ended by a newline, CRLF or a lone CR (an old Mac
    CSV), never at the other characters str.splitlines breaks at (a form feed from PDF text, U+2028,
    U+0085), which are text inside a field, not line ends."""
    return _PHYSICAL_LINE.findall(text)


def _review_of(status: Any, reason: Any = "") -> tuple[str, str]:
    """A record's own review (tunewiz's exports carry it): its status when it is one tunewiz knows
    (else pending) and, for a rejected pair, why."""
    status = status.strip().lower() if isinstance(status, str) else ""
    if status not in STATUSES:
        return "pending", ""
    return status, reason.strip() if isinstance(reason, str) and status == "rejected" else ""


def _record_review(record: Any) -> tuple[str, str]:
    if not isinstance(record, dict):
        return "pending", ""
    lowered = {str(k).strip().lower(): v for k, v in record.items()}
    return _review_of(lowered.get("status"), lowered.get("reason"))


def _pairs_of(samples: list, source: str, where: str,
              review: tuple[str, str] = ("pending", "")) -> Iterator[Pair | RowProblem]:
    for sample in samples:
        system, question, answer = sample[:3]
        history = sample[3] if len(sample) > 3 else []
        if not question.strip():
            yield RowProblem(where, "the question is empty")
        elif not answer.strip():
            yield RowProblem(where, "the answer is empty")
        elif any(not turn["content"].strip() for turn in history):
            yield RowProblem(where, "a turn of the conversation is empty")
        else:
            yield Pair(question=trim(question), answer=trim(answer), system=trim(system), source=source,
                       history=[turn | {"content": trim(turn["content"])} for turn in history],
                       status=review[0], reason=review[1])


def trim(text: str) -> str:
    """Text without the blank lines and spaces around it; but an indented block of lines keeps its first
    line's indentation (code: "    x = 1\n    y = 2" must not lose the first line's)."""
    block = text.rstrip().lstrip("\r\n")
    lines = block.split("\n")
    if len(lines) > 1 and all(line[:1] in (" ", "\t") for line in lines if line.strip()):
        return block
    return block.strip()


def _preference_error(path: Path, where: str) -> FormatError:
    return FormatError(f"{path}: {where}: preference data (chosen/rejected answers, or KTO labels): tunewiz "
                       "trains on question/answer pairs. Import the chosen answers as pairs with `--chosen`")


def iter_csv(path: Path, encoding: str | None = None, chosen: bool = False) -> Iterator[Pair | RowProblem]:
    lines = physical_lines(_read_text(path, encoding))  # the text itself is not kept
    base, delimiter = _csv_dialect(path, lines)  # base: lines before the header (Excel's `sep=;`)
    # skipinitialspace: `q, "red, yellow"` is two fields (a space after the comma, then a quoted one).
    options = {"strict": True, "skipinitialspace": True, "delimiter": delimiter}
    reader = csv.reader(iter(lines[base:]), **options)
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as exc:
        raise FormatError(f"{path}: line {base + 1}: cannot read the header ({exc})") from None
    columns = [h.strip().lower() for h in header]
    q_col = next((columns.index(c) for c in QUESTION_COLUMNS if c in columns), None)
    a_col = next((columns.index(c) for c in ANSWER_COLUMNS if c in columns), None)
    if q_col is None or a_col is None:
        # A first row that reads as a pair (a question, then its answer): the file has no header line.
        headless = len(header) == 2 and header[0].rstrip().endswith("?")
        raise FormatError(f"{path}: line {base + 1}: expected a Question and an Answer column "
                          f"(or instruction/output, prompt/response); found {', '.join(header)}"
                          + (". A file without a header line needs one: `question,answer` above the first row"
                             if headless else ""))
    s_col = columns.index("system") if "system" in columns else None
    st_col = columns.index("status") if "status" in columns else None  # tunewiz's own CSV export
    in_col = columns.index("input") if "input" in columns and columns[q_col] == "instruction" else None
    line = base + reader.line_num  # physical lines consumed so far
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
            reader = csv.reader(iter(lines[line:]), **options)
            base = line
            continue
        line = reader.line_num + base
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {start}"
        if len(row) <= max(q_col, a_col):
            yield RowProblem(where, f"only {len(row)} columns; the answer is missing")
            continue
        if any(cell.strip() for cell in row[len(header):]):  # cut off, the answer would lose its rest
            held = {",": "a comma", ";": "a semicolon", "\t": "a tab"}.get(delimiter, repr(delimiter))
            yield RowProblem(where, f"{len(row)} fields where the header has {len(header)}: a field holding "
                                    f"{held} must be in double quotes")
            continue
        question = row[q_col]
        if in_col is not None and in_col < len(row) and row[in_col].strip():
            question = f"{question}\n\n{row[in_col]}"
        system = row[s_col] if s_col is not None and s_col < len(row) else ""
        review = _review_of(row[st_col] if st_col is not None and st_col < len(row) else "")
        yield from _pairs_of([(system, question, row[a_col])], f"{path.name}:{start}", where, review)


def _csv_dialect(path: Path, lines: list[str]) -> tuple[int, str]:
    """(lines before the header, delimiter): Excel's `sep=;` first line says both; else the delimiter
    that finds the question and answer columns in the header (a comma; a semicolon where a decimal
    comma makes Excel save with semicolons; a tab in a .tsv file or text copied from a spreadsheet)."""
    first = lines[0].strip() if lines else ""
    if first.lower().startswith("sep=") and len(first) == 5:
        return 1, first[4]
    order = ["\t", ",", ";", "|"] if path.suffix.lower() == ".tsv" else [",", ";", "\t", "|"]
    for delimiter in order:
        try:
            columns = [c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter))]
        except (csv.Error, StopIteration):
            continue
        if set(columns) & set(QUESTION_COLUMNS) and set(columns) & set(ANSWER_COLUMNS):
            return 0, delimiter
    return 0, order[0]


def iter_jsonl(path: Path, encoding: str | None = None, chosen: bool = False) -> Iterator[Pair | RowProblem]:
    for number, line in enumerate(physical_lines(_read_text(path, encoding)), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = _json(line)
            samples = pairs_from_record(record, chosen)
        except PreferenceData:
            raise _preference_error(path, where) from None
        except json.JSONDecodeError as exc:
            yield RowProblem(where, f"not valid JSON ({exc.msg})")
            continue
        except ValueError as exc:
            yield RowProblem(where, str(exc), getattr(exc, "kind", "bad rows"))
            continue
        yield from _pairs_of(samples, f"{path.name}:{number}", where, _record_review(record))


def iter_json(path: Path, encoding: str | None = None, chosen: bool = False) -> Iterator[Pair | RowProblem]:
    """A JSON document: a list of records (Alpaca, ShareGPT, or QA objects)."""
    text = _read_text(path, encoding)
    try:
        document = _json(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    del text
    if isinstance(document, dict):
        document = _records_of_object(path, document)
    if not isinstance(document, list):
        raise FormatError(f"{path}: expected a JSON list of records")
    for number, record in enumerate(document, start=1):
        where = f"item {number}"
        try:
            samples = pairs_from_record(record, chosen)
        except PreferenceData:
            raise _preference_error(path, where) from None
        except ValueError as exc:
            yield RowProblem(where, str(exc), getattr(exc, "kind", "bad rows"))
            continue
        yield from _pairs_of(samples, f"{path.name}#{number}", where, _record_review(record))


def _records_of_object(path: Path, document: dict) -> list:
    """The records of a JSON object: the object itself when it is one record (an OpenAI `messages`
    sample, a QA object), else its one list of records ({"data": [...]}). Several lists ({"train": [...],
    "test": [...]}) are refused by name: taking the first would import part of the file in silence."""
    try:
        pairs_from_record(document, False)
        return [document]
    except PreferenceData:
        return [document]  # one preference record: the reader says what to do with it
    except ValueError:
        pass
    lists = [key for key, value in document.items() if isinstance(value, list)]
    if len(lists) > 1:
        raise FormatError(f"{path}: a JSON object with several lists ({', '.join(lists)}): save the records to "
                          "import as one JSON list (or JSON lines), or import each list from its own file")
    return document[lists[0]] if lists else [document]


def read_pairs(path: str | Path, encoding: str | None = None, chosen: bool = False) -> ReadResult:
    """Read any supported file, choosing the reader by extension (and content for .json).

    `encoding` is for text that is neither UTF-8 nor marked by a byte-order mark; `chosen`
    imports preference data as its prompts and chosen answers."""
    result = ReadResult()
    for item in iter_pairs(path, encoding, chosen):
        (result.problems if isinstance(item, RowProblem) else result.pairs).append(item)
    return result


PAIR_FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")
"""The files `iter_pairs` reads."""


def iter_pairs(path: str | Path, encoding: str | None = None, chosen: bool = False) -> Iterator[Pair | RowProblem]:
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
                          f"(expected {', '.join(PAIR_FILE_SUFFIXES[:-1])} or {PAIR_FILE_SUFFIXES[-1]})"
                          + _HINTS.get(suffix, ""))
    yield from reader(path, encoding, chosen)


_SPREADSHEET = ": save the sheet as CSV (a Question and an Answer column) and import that"
_DOCUMENT = (": a document is not a file of pairs; generate pairs from it with "
             "`tunewiz generate --documents FILE` (the wizard: the Data step's generator settings)")
_WORD_PROCESSOR = (": a document is not a file of pairs; save it as .txt or .pdf and generate pairs from it with "
                   "`tunewiz generate --documents FILE`")
_HINTS = {".xlsx": _SPREADSHEET, ".xls": _SPREADSHEET, ".ods": _SPREADSHEET, ".numbers": _SPREADSHEET,
          ".txt": _DOCUMENT, ".md": _DOCUMENT, ".markdown": _DOCUMENT, ".pdf": _DOCUMENT, ".html": _DOCUMENT,
          ".htm": _DOCUMENT, ".docx": _WORD_PROCESSOR, ".doc": _WORD_PROCESSOR, ".odt": _WORD_PROCESSOR,
          ".rtf": _WORD_PROCESSOR}
"""What to do instead with the files people try to import most often that are no files of pairs."""


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

ONE_TURN_FORMATS = ("csv", "alpaca")
"""Formats that hold one question and answer per row: conversations cannot be written to them."""


def export_records(pairs: Iterable[Pair], fmt: str, default_system: str = "") -> list[Any]:
    out: list[Any] = []
    for p in pairs:
        system = p.system or default_system
        turns = p.history + [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.answer}]
        if fmt == "jsonl":
            out.append({"id": p.id, "question": p.question, "answer": p.answer, "system": p.system,
                        "source": p.source, "status": p.status, "scores": p.scores}
                       | ({"reason": p.reason} if p.reason else {})
                       | ({"history": p.history} if p.history else {}))
        elif fmt == "alpaca":
            out.append({"instruction": p.question, "input": "", "output": p.answer}
                       | ({"system": system} if system else {}))
        elif fmt == "sharegpt":
            out.append({"conversations": ([{"from": "system", "value": system}] if system else []) + [
                {"from": "human" if t["role"] == "user" else "gpt", "value": t["content"]}
                | ({"weight": 0} if t.get("weight") == 0 else {}) for t in turns]})  # read back on import
        elif fmt == "openai":
            out.append({"messages": ([{"role": "system", "content": system}] if system else []) + [
                {"role": t["role"], "content": t["content"]} | ({"weight": 0} if t.get("weight") == 0 else {})
                for t in turns]})
        else:
            raise ValueError(f"unknown format {fmt!r}")
    return out


def write_pairs(pairs: Iterable[Pair], path: str | Path, fmt: str, default_system: str = "") -> tuple[int, int]:
    """Write pairs to a file in one of EXPORT_FORMATS (atomically); returns (written, conversations
    left out because the format holds one turn per row)."""
    from tunewiz.project import atomic_write_text

    if fmt not in EXPORT_FORMATS:
        raise FormatError(f"unknown format '{fmt}' (choose from {', '.join(EXPORT_FORMATS)})")
    pairs = list(pairs)
    left_out = 0
    if fmt in ONE_TURN_FORMATS:
        left_out = sum(1 for p in pairs if p.history)
        pairs = [p for p in pairs if not p.history]
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
    return len(pairs), left_out
