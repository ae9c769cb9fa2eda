"""Checks of what a generated pair says: is the question a question, is the answer an answer, and
(for document generation) does the chunk support it.

Small models fail in a few recognisable ways (seen on the lighthouse example with the embedded
SmolLM2): a heading or a sentence of the document as the "question", an answer that talks about
the task ("This is a question-and-answer pair..."), an answer the document does not contain.
Each check is cheap (no model call) and names its drop reason; the thresholds are settings whose
defaults come from `benchmarks/data/pair_labels.jsonl` (hand-labelled generated pairs), where
`benchmarks/pair_quality.py` measures each check's precision and recall.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal

from tunewiz.dedup import normalize
from tunewiz.questions import looks_like_question

STOPWORDS = frozenset("""a an and are as at be been but by can could did do does for from had has have how i if in
into is it its may might more most must no not of on or our should so some such than that the their them then
there these they this those to was we were what when where which who whom whose why will with would you your
about also any each many much one only other very after before over under again same both all""".split())

META_ANSWER = re.compile(
    r"\b(question[- ]and[- ]answer|q\s*&\s*a pair|the (above |following )?question (is|asks|was)|"
    r"(this|the) answer (to (this|the) question )?(is|must|should) (be )?(in|one|a|written)|"
    r"\bone (or|of) two sentences\b|\b(2|two) different questions\b|as an ai\b|i (cannot|can't) answer|"
    r"\bin json\b|\bjson (object|format)\b|here (is|are) (the|some|a|your) (pairs?|questions?)|"
    r"\bcontinuation of (the |this )?request\b|\brequest \d+\b|\badd more examples?\b|"
    r"^\W*[\]})\[{;])",  # the reply's JSON spilling into the answer: ');} Here is...', '}]} You can...'
    re.IGNORECASE)
"""An answer about the task, the format or "the question" rather than about the subject."""

CHECK_REASONS = ("not_a_question", "copied_statement", "meta_answer", "restates_question",
                 "unsupported", "off_topic")
FAILS_BECAUSE = {
    "not_a_question": "writes questions that are not questions",
    "copied_statement": "copies the documents' sentences as questions",
    "meta_answer": "answers about the task instead of the subject",
    "restates_question": "answers with the question's own words",
    "unsupported": "answers what the documents do not say",
    "off_topic": "asks about something other than the topic or the document",
}
"""What a model does when most of its pairs fail a check, by the check (the summary's advice)."""
# A comma groups thousands only before exactly three digits ("1,200"); "1,2,3" is three numbers.
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?![\d,])|\d+(?:\.\d+)?")
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = ("zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
             "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth").split()
_MONTHS = "January February March April May June July August September October November December".split()
NUMBER_WORDS = {**{w: i for i, w in enumerate(_UNITS)}, **{w: i for i, w in enumerate(_ORDINALS)},
                **{w: 20 + 10 * i for i, w in enumerate(_TENS)},
                **{w[:-1] + "ieth": 20 + 10 * i for i, w in enumerate(_TENS)}, "hundred": 100, "thousand": 1000}
"""Numbers written as words ("twelve", "third", "forty"), which a chunk states as often as digits."""
_ONE_NUMBER_WORD = r"\b(?:" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")\b"
_NUMBER_RUN = re.compile(_ONE_NUMBER_WORD + r"(?:(?:(?:(?<=hundred)|(?<=thousand))\s+and\s+|[\s-]+)"
                         + _ONE_NUMBER_WORD + ")*", re.IGNORECASE)
"""Number words in a row ("two hundred and fifty"), read as one number."""
_MONTH = re.compile(r"\b(" + "|".join(_MONTHS) + r")\b")  # capitalised only: "may" is also a verb


def content_words(text: str) -> set[str]:
    """Words that carry meaning (no stopwords; a plural -s dropped), for the lexical checks."""
    return {word[:-1] if len(word) > 4 and word.endswith("s") else word for word in normalize(text).split()
            if word not in STOPWORDS and (len(word) >= 3 or word.isdigit())}


def support(text: str, chunk: str) -> float:
    """The share of the text's content words that the chunk holds (1.0 for a text with none)."""
    words = content_words(text)
    if not words:
        return 1.0
    return len(words & _chunk_words(chunk)) / len(words)


@functools.lru_cache(maxsize=256)
def _chunk_words(chunk: str) -> frozenset[str]:
    """A chunk's content words, once for all the pairs of its reply (and for question and answer)."""
    return frozenset(content_words(chunk))


META_QUESTION = re.compile(r"\b(?:this|that|the following|the above) question\b", re.IGNORECASE)
"""A "question" about the task rather than the subject, seen from the embedded model: "What is the answer
to this question?", "Please answer this question.", "This is a question I am not able to answer"."""


def question_problem(question: str, chunk: str = "") -> str | None:
    """'not_a_question' (a heading, a fragment, a question about the task) or 'copied_statement' (a
    sentence of the chunk), or None."""
    if not looks_like_question(question) or META_QUESTION.search(question):
        return "not_a_question"
    q = normalize(question)
    if chunk and not question.rstrip().endswith("?") and q and q in normalize(chunk):
        return "copied_statement"
    return None


def answer_problem(question: str, answer: str) -> str | None:
    """'meta_answer' (about the task, not the subject) or 'restates_question', or None."""
    if META_ANSWER.search(answer):
        return "meta_answer"
    return "restates_question" if restates_question(question, answer) else None


_ASKS_FOR = re.compile(r"^\W*(what|which|who|whom|whose|where|when|why|how)\b", re.IGNORECASE)


_CHOICE = re.compile(r"\bor\b|\bwhich (?:one )?of\b|\bbetween\b|:", re.IGNORECASE)
"""A question that names its own answers: "... glass or brass?", "Which of Bell Rock and Skerryvore...?",
"Which is older: Bell Rock, Skerryvore?"."""


def restates_question(question: str, answer: str) -> bool:
    """The answer to a what/which/who... question names only what the question already says ("What type
    of tower is Gannet Rock Light?" -> "Gannet Rock Tower"). A yes/no question ("Is it red and white?")
    or a choice (_CHOICE) is rightly answered from its own words."""
    words = content_words(answer)
    return (len(words) >= 2 and words <= content_words(question) and bool(_ASKS_FOR.match(question))
            and not _CHOICE.search(question))


def numbers(text: str) -> set[str]:
    """The numbers a text states, each in one form: "1,200" and "1200", "2.50" and "2.5", "05" and "5",
    "12" and "twelve", "3rd" and "third", and a month's name and its number are the same number."""
    found = {_number_form(n) for n in _NUMBER.findall(text)}
    for run in _NUMBER_RUN.finditer(text):
        words = [w.lower() for w in re.findall(r"[A-Za-z]+", run.group(0)) if w.lower() != "and"]
        if words != ["one"]:  # "one of the oldest", "no one": seldom a count
            found.add(str(_number_value(words)))
    found.update(str(_MONTHS.index(month) + 1) for month in _MONTH.findall(text))
    return found


def _number_value(words: list[str]) -> int:
    """The number a run of number words says: "two hundred and fifty" is 250, "twenty-first" 21."""
    total = current = 0
    for word in words:
        value = NUMBER_WORDS[word]
        if value == 100:
            current = (current or 1) * 100
        elif value == 1000:
            total, current = total + (current or 1) * 1000, 0
        else:
            current += value
    return total + current


def _number_form(number: str) -> str:
    return format(Decimal(number.replace(",", "")).normalize(), "f")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ABBREVIATION = re.compile(r"(?:^|\s)(?:[A-Z]|Mr|Mrs|Ms|Dr|St|Mt|Ft|No|Nos|Jr|Sr|Prof|Capt|Gen|Col|Lt|Sgt|Rev|"
                           r"Hon|Gov|Co|Inc|Ltd|Bros|vs|etc|e\.g|i\.e|approx|ca|cf|Jan|Feb|Mar|Apr|Jun|Jul|Aug|"
                           r"Sep|Sept|Oct|Nov|Dec)\.$", re.IGNORECASE)
MIN_SENTENCE_WORDS = 3
"""A sentence with fewer content words ("In 1894.") is judged with the whole answer, not alone."""


def sentences(text: str) -> list[str]:
    """The sentences of a text; a full stop after an abbreviation or an initial ("St. Abbs Head",
    "R. L. Stevenson", "e.g. the lens") ends none, nor one before a word in lower case."""
    found: list[str] = []
    for piece in _SENTENCE_END.split(text.strip()):
        if found and (_ABBREVIATION.search(found[-1]) or not piece[:1].isupper() and not piece[:1].isdigit()):
            found[-1] += " " + piece
        else:
            found.append(piece)
    return found


def sentence_support(answer: str, chunk: str) -> float:
    """The least support of the answer's sentences (those of MIN_SENTENCE_WORDS content words or more),
    1.0 when it has fewer than two: a small model starts with the chunk's own sentence and goes on
    inventing ("The relief boat brings fresh water... The only thing that can help is..."), which the
    average over the answer hides. One sentence is the whole answer, judged by min_support alone."""
    judged = [s for s in sentences(answer) if len(content_words(s)) >= MIN_SENTENCE_WORDS]
    return min((support(s, chunk) for s in judged), default=1.0) if len(judged) >= 2 else 1.0


STEM_CHARS = 5
"""Words that agree in their first this many letters, plural endings dropped, are one word to the topic
check ("volcano", "volcanoes", "volcanic"; "cat" and "cats"); shorter words must be equal."""


def _stem(word: str) -> str:
    """A word without its plural ending ("cats", "taxes", "volcanoes"), cut to STEM_CHARS letters."""
    if len(word) > 4 and word.endswith("es") and word[:-2].endswith(("x", "s", "z", "ch", "sh", "o")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:STEM_CHARS]


def _stems(text: str) -> set[str]:
    return {_stem(word) for word in normalize(text).split()
            if word not in STOPWORDS and (len(word) >= 3 or word.isdigit())}


def off_topic(question: str, subject: str) -> bool:
    """A question of topic generation that names nothing of its topic or subtopic. Asked about volcanoes,
    the embedded model wrote "How to build bridges?" (the prompt's example was a bridge) and questions
    that stand on nothing ("Which one is the largest?", "What are the three main components?"): a pair
    trains the model to answer its question alone, so the question must say what it is about."""
    wanted = _stems(subject)
    return bool(wanted) and not wanted & _stems(question)


def content_problem(question: str, answer: str, chunk: str, g, subject: str = "") -> tuple[str | None, dict[str, float]]:
    """The drop reason of a pair and its scores (support, when there is a chunk); `g` holds the
    thresholds (a GeneratorSection: min_support, min_sentence_support, min_question_support). `subject`:
    the topic and subtopic a pair of topic generation was asked about."""
    reason = question_problem(question, chunk) or answer_problem(question, answer)
    if not reason and not chunk and subject and g.min_question_support > 0 and off_topic(question, subject):
        reason = "off_topic"
    scores: dict[str, float] = {}
    if chunk:
        scores["support"] = round(support(answer, chunk), 3)
        scores["sentence_support"] = round(sentence_support(answer, chunk), 3)
        scores["question_support"] = round(support(question, chunk), 3)
        # A number the chunk does not hold (a year, a count) is the commonest invented fact, and the
        # easiest to see: the lexical score alone kept "The light was first lit in 1932." (no 1932 in it).
        # min_support 0 switches the support checks off, this one and the per-sentence one too.
        checked = g.min_support > 0
        invented = checked and bool(numbers(answer) - numbers(chunk) - numbers(question))
        weak_sentence = checked and scores["sentence_support"] < g.min_sentence_support
        if not reason and (scores["support"] < g.min_support or invented or weak_sentence):
            reason = "unsupported"
        elif not reason and scores["question_support"] < g.min_question_support:
            reason = "off_topic"
    return reason, scores
