"""The messages and JSON schemas sent to the model, and tolerant parsing of its replies."""

from __future__ import annotations

import json
import re
from typing import Any

# Guidance and limits per `generator.answer_length`. The character limit goes into the
# JSON schema, so a grammar-constrained server (llama.cpp) cannot ramble past it; the
# token budget follows from it (about 3 characters per token, plus the question).
ANSWER_LENGTHS = {
    "short": ("one or two sentences", 400),
    "medium": ("a short paragraph of three to five sentences", 1200),
    "long": ("several paragraphs", 4000),
}
QUESTION_MAX_CHARS = 300


def pairs_schema(n: int, answer_length: str) -> dict[str, Any]:
    """JSON schema of a reply holding 1 to `n` question/answer pairs: a schema that demands exactly n
    makes a weak model pad its reply with filler pairs."""
    answer_chars = ANSWER_LENGTHS[answer_length][1]
    return {
        "type": "object",
        "properties": {
            "pairs": {
                "type": "array",
                "minItems": 1,
                "maxItems": n,
                "items": {
                    "type": "object",
                    "properties": {
                        "question": {"type": "string", "minLength": 1, "maxLength": QUESTION_MAX_CHARS},
                        "answer": {"type": "string", "minLength": 1, "maxLength": answer_chars},
                    },
                    "required": ["question", "answer"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["pairs"],
        "additionalProperties": False,
    }


def pairs_max_tokens(n: int, answer_length: str) -> int:
    answer_chars = ANSWER_LENGTHS[answer_length][1]
    return n * ((QUESTION_MAX_CHARS + answer_chars) // 3 + 20) + 30


EXAMPLE_PAIR = ("...?", "...")
"""The reply's form in every pairs prompt, without content. An example with content ("When was the bridge
opened?" / "The bridge was opened in 1932.") was handed back, or its subject taken, in most of the
embedded model's replies: asked about volcanoes, the French revolution and photosynthesis (8 requests
each), it kept 1 pair (about a bridge) against 8 with this form (docs/generate.md). The form handed
back as a pair is dropped as empty (generators.quality)."""


def _rules(g, n: int) -> str:
    guidance = ANSWER_LENGTHS[g.answer_length][0]
    return (f"Write up to {n} different question-and-answer pairs in {g.language}: fewer good pairs are "
            "better than filler.\n"
            f"Answers: {g.answer_style}, {guidance}. Each answer must stand on its own "
            f"and must not repeat the question.\n"
            'Reply with JSON only, in this form (an example of the form, not of the content): '
            + json.dumps({"pairs": [dict(zip(("question", "answer"), EXAMPLE_PAIR))]}))


READ_AGAIN_FOCUS = ("the numbers, dates and names it gives", "how and why things happen in it",
                    "the people, places and objects it describes", "the rules, steps and warnings it gives")


def chunk_messages(g, text: str, n: int, round_: int = 0) -> list[dict[str, str]]:
    """Messages asking for `n` pairs answerable from one document chunk (`round_`: as topic_messages)."""
    user = (f"{_rules(g, n)}\nAsk only about what the text below says; every answer must "
            f"come from it.")
    if round_:
        # A later read of the same text: another focus each time, for other questions (a weak model copies
        # sentences about "request 2" into its questions; it rarely copies these).
        user += f"\nThis time ask about {READ_AGAIN_FOCUS[(round_ - 1) % len(READ_AGAIN_FOCUS)]}."
    user += f"\n\nText:\n\"\"\"\n{text}\n\"\"\""
    return [{"role": "system", "content": g.system_prompt}, {"role": "user", "content": user}]


def topic_messages(g, topic: str, subtopic: str, n: int, round_: int = 0) -> list[dict[str, str]]:
    """Messages asking for `n` pairs about a topic (and one of its subtopics).

    `round_` counts earlier requests on the same subject; later ones ask for less
    obvious questions, so repeated requests do not repeat the same pairs.
    """
    about = f"{topic}, focusing on: {subtopic}" if subtopic else topic
    user = f"The topic is {about}.\n{_rules(g, n)}"
    if round_:
        user += (f"\nThis is request {round_ + 1} on this subject: skip the obvious first "
                 "questions and ask about details, causes, examples and comparisons.")
    return [{"role": "system", "content": g.system_prompt}, {"role": "user", "content": user}]


def subtopics_schema(k: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"subtopics": {"type": "array", "minItems": k, "maxItems": k,
                                     "items": {"type": "string", "minLength": 2, "maxLength": 80}}},
        "required": ["subtopics"],
        "additionalProperties": False,
    }


def subtopics_messages(g, topic: str, k: int) -> list[dict[str, str]]:
    user = (f"List {k} distinct subtopics of \"{topic}\" that questions could be asked about, "
            f"each a few words, in {g.language}.\n"
            'Reply with JSON only, in this form: {"subtopics": ["...", "..."]}')
    return [{"role": "system", "content": "You plan study material. Be specific and varied."},
            {"role": "user", "content": user}]


JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "enum": list(range(1, 11))}},
    "required": ["score"],
    "additionalProperties": False,
}


def judge_messages(question: str, answer: str) -> list[dict[str, str]]:
    user = ("Rate this question-and-answer pair from 1 (useless or wrong) to 10 (correct, clear "
            "and useful for teaching).\n"
            f"Question: {question}\nAnswer: {answer}\n"
            'Reply with JSON only, in this form: {"score": 7}')
    return [{"role": "system", "content": "You are a strict, fair reviewer of study material."},
            {"role": "user", "content": user}]


REWORD_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string", "minLength": 5, "maxLength": QUESTION_MAX_CHARS}},
    "required": ["question"],
    "additionalProperties": False,
}
REWORD_MAX_TOKENS = QUESTION_MAX_CHARS // 3 + 20


REWORD_EXAMPLE = ("When was the Velmora Institute founded?", "In which year did the Velmora Institute open?")
"""The example rewording of the prompt: a small model sometimes hands it back for any question
(generators.rewording drops it as `copied_example`)."""


def reword_messages(question: str) -> list[dict[str, str]]:
    """Messages asking for one question that asks for the same fact in other words, in the question's
    own language (the project's `generator.language` is for new pairs; a rewording must not translate)."""
    user = ("Rewrite the question so that it asks for exactly the same fact in different words, in the "
            "same language as the question: change the wording and the order of the sentence, keep every "
            "name and number, do not answer it and do not add anything.\n"
            f'Example: "{REWORD_EXAMPLE[0]}" -> {json.dumps({"question": REWORD_EXAMPLE[1]})}\n'
            f"Question: \"{question}\"\n"
            'Reply with JSON only, in this form: {"question": "..."}')
    return [{"role": "system", "content": "You rewrite questions without changing what they ask."},
            {"role": "user", "content": user}]


# ---------------------------------------------------------------- parsing replies

class ReplyError(ValueError):
    """A reply that holds no usable JSON; the message is the reason recorded for the chunk."""


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def parse_json(content: str | None) -> Any:
    """The JSON value in a reply: bare, in a ``` fence, or inside surrounding prose.

    A reasoning model's `<think>...</think>` part is removed first: a draft JSON inside it is not
    the answer (an unclosed one means the reply was cut off while thinking)."""
    if content is None or not content.strip():
        raise ReplyError("empty reply")
    text = _THINK.sub("", content).strip()
    if "</think>" in text:  # the template opened <think> in the prompt: the reply starts inside it
        text = text.rpartition("</think>")[2].strip()
    if "<think>" in text:
        raise ReplyError("the reply ended while the model was still thinking (<think> without </think>)")
    if not text:
        raise ReplyError("empty reply after the model's <think> part")
    candidates = [text] + _FENCE.findall(text)
    # strict=False: models (grammar-constrained llama.cpp ones too) write raw line breaks and tabs
    # inside strings, which strict JSON refuses although the reply is otherwise whole.
    decoder = json.JSONDecoder(strict=False)
    for candidate in candidates:
        try:
            return decoder.decode(candidate)
        except ValueError:
            pass
    # Prose around the JSON: the longest value that starts at a brace or bracket ("Here are [3] pairs:
    # {...}" holds a [3] first, which is not the answer).
    found: list[tuple[int, Any]] = []
    index = 0
    while index < len(text):
        if text[index] in "{[":
            try:
                value, end = decoder.raw_decode(text, index)
            except ValueError:
                pass
            else:
                found.append((end - index, value))
                index = end
                continue
        index += 1
    if found:
        return max(found, key=lambda item: item[0])[1]
    if text.lstrip().startswith(("{", "[")):
        raise ReplyError(f"truncated or malformed JSON ({len(text)} characters)")
    raise ReplyError("no JSON in the reply")


_QUESTION_KEYS = ("question", "q", "prompt", "instruction")
_ANSWER_KEYS = ("answer", "a", "response", "output")


def _field(item: dict, names: tuple[str, ...]) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in item.items()}
    for name in names:
        value = lowered.get(name)
        if isinstance(value, str):
            return value
    return None


def parse_pairs(content: str | None) -> list[tuple[str, str]]:
    """(question, answer) tuples from a reply; ReplyError when there are none."""
    data = parse_json(content)
    if isinstance(data, dict):
        items = next((v for k, v in data.items() if isinstance(v, list)), None)
        if items is None:
            items = [data]  # a single pair as a bare object
    elif isinstance(data, list):
        items = data
    else:
        raise ReplyError(f"expected a JSON object or list, got {type(data).__name__}")
    pairs = []
    for item in items:
        if not isinstance(item, dict):
            continue
        question, answer = _field(item, _QUESTION_KEYS), _field(item, _ANSWER_KEYS)
        if question is not None and answer is not None:
            pairs.append((question.strip(), answer.strip()))
    if not pairs:
        raise ReplyError("JSON without question/answer pairs")
    return pairs


_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\(?\d{1,2}[.):]|\(?[A-Za-z][):])\s+")
"""A list mark before a subtopic: "- ", "2. ", "A: ", "b) " (a letter and a full stop is an initial: "E. coli")."""


def parse_subtopics(content: str | None) -> list[str]:
    data = parse_json(content)
    items = data.get("subtopics") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ReplyError("JSON without a list of subtopics")
    seen, result = set(), []
    for item in items:
        # A small model numbers or letters its items ("A: The largest volcano.") and pads with "...".
        text = _LIST_MARK.sub("", item).strip() if isinstance(item, str) else ""
        if re.search(r"\w", text) and text.lower() not in seen:
            seen.add(text.lower())
            result.append(text)
    if not result:
        raise ReplyError("an empty list of subtopics")
    return result


def parse_score(content: str | None) -> int:
    data = parse_json(content)
    score = data.get("score") if isinstance(data, dict) else data
    if isinstance(score, str) and score.strip().isdigit():
        score = int(score.strip())
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 1 <= score <= 10:
        raise ReplyError(f"a score outside 1-10: {score!r}")
    return int(round(score))


def parse_reworded(content: str | None) -> str:
    """The reworded question of a reply; ReplyError when there is none."""
    data = parse_json(content)
    question = _field(data, _QUESTION_KEYS) if isinstance(data, dict) else data
    if not isinstance(question, str) or not question.strip():
        raise ReplyError("JSON without a question")
    # One question: what follows its question mark is not part of it. The embedded model ends some with
    # the prompt's debris ("Who founded the University of Ostrel? } Example: {"), which made a copy of
    # the original pass for a rewording.
    head, mark, _ = question.partition("?")
    return " ".join((head + mark).split())
