"""Chat answers stream: the pieces, joined, are the whole answer, cut at the same stop string."""

from __future__ import annotations

import pytest

from tunewiz.chat import cut_stream
from tunewiz.templates import cut_at_stops

STOPS = ["<|im_end|>"]


@pytest.mark.parametrize("pieces", [
    ["  Paris", " is the", " capital.", "<|im", "_end|>", " and more"],  # a stop split over pieces
    ["The answer", " <|im_end|>"],
    ["<", "b>bold</b> but no stop ", " "],
    ["", "   ", ""],
    ["a < b and c <|", "im_end|"],  # the start of a stop that never completes is text after all
])
def test_pieces_join_to_the_whole_cut_answer(pieces):
    streamed = list(cut_stream(iter(pieces), STOPS))
    assert "".join(streamed) == cut_at_stops("".join(pieces), STOPS)
    assert all(streamed)  # no empty pieces


def test_text_that_may_begin_a_stop_waits():
    shown = []
    for piece in cut_stream(iter(["Yes.", "<|im", "_end|>"]), STOPS):
        shown.append(piece)
    assert shown == ["Yes."]  # "<|im" was held back, then dropped with the stop


@pytest.mark.slow  # loads SmolLM2 twice (llama.cpp and transformers)
def test_both_answerers_stream_their_greedy_answer():
    from tunewiz.basemodel import resolve_base
    from tunewiz.chat import GGUFAnswerer, HFAnswerer
    from tunewiz.models import smollm2_gguf_path
    from tunewiz.templates import template_stops

    question = "What is the capital of France?"
    gguf = GGUFAnswerer(smollm2_gguf_path(), "chatml", stops=template_stops("chatml", None))
    try:
        pieces = list(gguf.stream(question, 48))
        assert len(pieces) > 1 and "".join(pieces) == gguf.answer(question, 48)
    finally:
        gguf.close()
    hf = HFAnswerer(resolve_base("smollm2-135m"), "chatml")
    pieces = list(hf.stream(question, 48))
    assert len(pieces) > 1 and "".join(pieces) == hf.answer(question, 48)
    assert "Paris" in "".join(pieces)
