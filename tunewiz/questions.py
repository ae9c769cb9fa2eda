"""Is this text a question (or an instruction) a person would ask a model?

One check, used wherever the product makes or accepts a question: reworded questions
for recall, and (later) the quality filter of generated pairs.
"""

from __future__ import annotations

QUESTION_WORDS = ("what", "who", "whom", "whose", "which", "when", "where", "why", "how", "is", "are", "was",
                  "were", "do", "does", "did", "can", "could", "should", "would", "will", "has", "have", "may")
INSTRUCTION_VERBS = ("tell", "name", "list", "explain", "describe", "give", "write", "define", "summarize",
                     "summarise", "translate", "say", "state", "show", "compare", "suggest", "recommend",
                     "identify", "outline", "please", "i'd", "i would", "do you know", "could you")


def looks_like_question(text: str) -> bool:
    """A question mark at the end, or a question word or instruction verb first; not a bare heading."""
    text = " ".join(text.split())
    if len(text.split()) < 3:
        return False
    lowered = text.lower()
    if text.endswith("?"):
        return True
    first = lowered.split()[0].strip(",:;")
    return first in QUESTION_WORDS or lowered.startswith(INSTRUCTION_VERBS)
