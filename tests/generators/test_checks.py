"""The content checks of generated pairs on the shipped hand-labelled set, and in a real run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gen_helpers import write_chunks
from tunewiz.generators.checks import content_problem, numbers, sentences, support
from tunewiz.generators.prompts import EXAMPLE_PAIR
from tunewiz.generators.quality import shape_problem
from tunewiz.schema import GeneratorSection

LABELS = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "pair_labels.jsonl"
ROWS = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['label']}:{r['question'][:30]}" for r in ROWS])
def test_each_labelled_pair_gets_its_verdict(row):
    g = GeneratorSection()
    reason, scores = content_problem(row["question"], row["answer"], row["chunk"], g)
    reason = shape_problem(row["question"], row["answer"]) or reason
    if row["label"] == "good":
        assert reason is None, (reason, scores)
    else:  # a copied statement is also not a question: either reason names the fault
        assert reason == row["label"] or {reason, row["label"]} <= {"copied_statement", "not_a_question"}


CHUNK = ("The relief boat Marguerite comes from Cape Sorrel every fourteen days with fresh water, paraffin, "
         "food and post. The tower is 31 metres tall.")


@pytest.mark.parametrize("question,answer,verdict", [
    # Seen from the embedded model on the lighthouse example (benchmarks/data/pair_labels_fresh.jsonl):
    ("When was the light opened?", "The light was first lit in 1932.", "unsupported"),  # a number it does not hold
    ("When was the bridge opened?", "The bridge was opened in 1932. The tower is 31 metres tall.",
     "unsupported"),  # the example pair of an earlier prompt handed back: 1932 is not in the chunk
    ("How tall is the tower?", "The tower is 31 metres tall.", None),  # its number is in the chunk
    ("How often does the relief boat come?", "Every 12 days.", "unsupported"),  # 12 is not written there
    # The same number in another form is not an invented one:
    ("How often does the relief boat come?", "Every 14 days.", None),  # "fourteen" in the chunk
    ("How tall is the tower?", "It is 31.0 metres tall.", None),
    ("Is the 31 metre tower taller than 30 metres?", "Yes, it is 31 metres tall.", None),  # the question's number
])
def test_invented_numbers_are_dropped(question, answer, verdict):
    g = GeneratorSection()
    assert content_problem(question, answer, CHUNK, g)[0] == verdict


@pytest.mark.parametrize("question,answer,verdict", [
    # Seen from the embedded model: the chunk's own sentence, then an invented one (the whole answer's
    # support, 0.62, passes; the second sentence's, 0, does not).
    ("What does the relief boat bring?", "The relief boat Marguerite brings fresh water, paraffin, food and "
     "post from Cape Sorrel. The keepers fear winter storms greatly.", "unsupported"),
    ("What does the relief boat bring?", "Fresh water, paraffin, food and post. It comes from Cape Sorrel.", None),
    # An answer that only repeats the question's words tells nothing.
    ("What type of tower is the Marguerite relief boat tower?", "The Marguerite tower.", "restates_question"),
    ("Does the relief boat bring paraffin or coal?", "Paraffin.", None),  # a choice, from its own words
    ("Does the relief boat come from Cape Sorrel or Cape Wrath?", "Cape Sorrel.", None),
    ("Does the relief boat bring fresh water?", "Yes, fresh water.", None),  # yes/no, from its own words
    ("Which of Cape Sorrel and Cape Wrath does the boat come from?", "Cape Sorrel.", None),  # choices too
    ("Where does the boat come from: Cape Sorrel, Cape Wrath?", "Cape Sorrel.", None),
])
def test_invented_sentences_and_restated_questions_are_dropped(question, answer, verdict):
    assert content_problem(question, answer, CHUNK, GeneratorSection())[0] == verdict


@pytest.mark.parametrize("question,answer,verdict", [
    # Seen from the embedded model asked about volcanoes (the prompt's example pair is about a bridge):
    ("How to build bridges, and how are they done?", "There are many ways to build a bridge.", "off_topic"),
    ("What is the biggest volcano?", "Eruption of Mount St. Helens in 1980.", None),
    ("Which volcanic mountain erupted in 1980?", "Mount St. Helens.", None),  # "volcanic" names it
    # A question that says nothing of what it asks about teaches nothing on its own:
    ("Which one is the largest?", "The largest volcano is Mauna Loa.", "off_topic"),
    ("Which volcanoes erupted in 1980?", "Mount St. Helens.", None),
])
def test_topic_pairs_must_name_something_of_their_topic(question, answer, verdict):
    g = GeneratorSection()
    subject = "volcanoes Earth's most active volcano"
    assert content_problem(question, answer, "", g, subject)[0] == verdict
    assert content_problem(question, answer, "", dataclasses.replace(g, min_question_support=0.0), subject)[0] is None


@pytest.mark.parametrize("topic,question", [("cat", "Why do cats purr at night?"),
                                            ("dogs", "How long does a dog usually live?"),
                                            ("tax", "How are taxes collected?"), ("glass", "Who blows glasses?")])
def test_a_plural_names_its_topic(topic, question):
    assert content_problem(question, "For many reasons, in many ways.", "", GeneratorSection(), topic)[0] is None


def test_the_summary_says_what_the_model_did_wrong():
    from tunewiz.generators.runner import GenerationSummary

    said = " ".join(GenerationSummary(pairs_added=1, dropped={"off_topic": 12, "not_a_question": 4}).lines())
    assert "the model asks about something other than the topic or the document and writes questions that " \
           "are not questions" in said
    assert "min_question_support 0 turns the topic check off" in said and "min_support" not in said
    # A reason with a small share of the drops is not named as what the model does.
    said = " ".join(GenerationSummary(pairs_added=1, dropped={"unsupported": 12, "not_a_question": 1}).lines())
    assert "the model answers what the documents do not say." in said and "min_support lowers the bar" in said
    # Drops spread over many reasons: the commonest is still named.
    spread = {"not_a_question": 3, "meta_answer": 2, "restates_question": 2, "unsupported": 2, "off_topic": 2}
    said = " ".join(GenerationSummary(pairs_added=1, dropped=spread).lines())
    assert "the model writes questions that are not questions." in said


def test_a_full_stop_after_an_abbreviation_ends_no_sentence():
    # Split there, "St." and "Abbs Head ..." were judged alone and a supported answer was dropped.
    chunk = "Mr. Smith kept the light at St. Abbs Head for twenty years, e.g. through the storm of 1881."
    answer = "Mr. Smith kept the light at St. Abbs Head for twenty years."
    assert sentences(answer) == [answer]
    assert content_problem("Who kept the light at St. Abbs Head?", answer, chunk, GeneratorSection())[0] is None
    assert sentences("It was lit in 1811. R. L. Stevenson wrote of it.") == ["It was lit in 1811.",
                                                                          "R. L. Stevenson wrote of it."]


def test_one_sentence_is_judged_by_min_support_alone():
    # The per-sentence threshold is for a true sentence followed by invented ones; on a one-sentence
    # answer it overrode min_support, so lowering min_support kept nothing more.
    answer = "The relief boat Marguerite sails with coal, timber and glass."  # 3 of its 7 content words
    g = GeneratorSection()
    assert content_problem("What does the relief boat carry?", answer, CHUNK, g)[0] == "unsupported"
    assert support(answer, CHUNK) >= 0.3
    assert content_problem("What does the relief boat carry?", answer, CHUNK,
                           dataclasses.replace(g, min_support=0.3))[0] is None


@pytest.mark.parametrize("text,expected", [
    ("It cost 1,200 crowns, not 1200.5 or 2.50.", {"1200", "1200.5", "2.5"}),
    ("Steps 1,2,3 and 05", {"1", "2", "3", "5"}),
    ("twelve keepers, the third tower, twenty-one lamps, the forty-second year", {"12", "3", "21", "42"}),
    ("Opened on 1 May 1932; keepers may leave.", {"1", "5", "1932"}),
    ("Dated 1932-05-01.", {"1932", "5", "1"}),
    ("two hundred and fifty-two steps, one thousand two hundred crowns", {"252", "1200"}),
    ("one of the oldest lights, between two and three keepers", {"2", "3"}),  # "one of" is no count
])
def test_numbers_are_read_in_one_form_whatever_way_they_are_written(text, expected):
    assert numbers(text) == expected


@pytest.mark.parametrize("question", ["What is the answer to this question?", "Please answer this question.",
                                      "This is a question I am not able to answer"])
def test_a_question_about_the_task_is_no_question(question):
    assert content_problem(question, "The French Revolution began in 1789.", "", GeneratorSection(),
                           "the French revolution")[0] == "not_a_question"


@pytest.mark.parametrize("answer", [");} Here is a continuation of request 6 on this subject.",
                                    "}]} You can add more example here, this is a good start."])
def test_json_debris_and_talk_of_the_requests_are_no_answer(answer):
    # Seen from the embedded model asked about volcanoes.
    assert content_problem("How many volcanoes are there?", answer, "", GeneratorSection(), "volcanoes")[0] \
        == "meta_answer"


def test_the_prompts_form_handed_back_is_dropped():
    # The form has no content: handed back, it is an empty pair to the shape checks.
    assert shape_problem(EXAMPLE_PAIR[0], "The tower is 31 metres tall.") is not None
    assert shape_problem("How tall is the tower?", EXAMPLE_PAIR[1]) is not None
    assert shape_problem("How tall is the tower?", "The tower is 31 metres tall.") is None


def test_support_counts_content_words_only():
    chunk = "The relief boat Marguerite comes from Cape Sorrel every fourteen days."
    assert support("It comes every fourteen days.", chunk) == 1.0
    assert support("Built in Glasgow in 1921.", chunk) == 0.0
    assert support("the of and", chunk) == 1.0  # nothing to check


def test_a_run_keeps_the_good_pairs_and_stores_the_others_as_rejected(fault_project, fault_server):
    """The stand-in server answers with made-up "points": with the default checks they are unsupported."""
    from tunewiz.dataset import PairStore
    from tunewiz.generators.runner import generate_pairs

    fault_project.set("generator.min_support", GeneratorSection().min_support)
    fault_project.set("generator.min_question_support", 0.0)
    write_chunks(fault_project, [f"Passage c{i} says point 0 is worth 3 units and point 1 is worth 10 units."
                                 for i in range(2)] + ["A passage about nothing the server says."])
    summary = generate_pairs(fault_project)
    pairs = list(PairStore(fault_project.pairs_path))
    rejected = [p for p in pairs if p.status == "rejected"]
    assert rejected and any(p.status == "pending" for p in pairs)
    assert summary.pairs_rejected == len(rejected) and all(p.reason == "unsupported" for p in rejected)
    assert all(p.scores["support"] < GeneratorSection().min_support for p in rejected)
    assert all(p.scores["support"] >= GeneratorSection().min_support for p in pairs if p.status == "pending")
    assert "kept as rejected" in "\n".join(summary.lines())


def test_review_filters_on_the_reason_a_check_gave():
    from tunewiz.dataset import Pair
    from tunewiz.tui.review_query import filter_pairs, parse_query

    pairs = [Pair(question="Q1?", answer="A1.", status="rejected", reason="unsupported"),
             Pair(question="Q2?", answer="A2.", status="rejected", reason="meta_answer"),
             Pair(question="Q3?", answer="A3.")]
    assert [p.question for p in filter_pairs(pairs, parse_query("reason:unsupported"))] == ["Q1?"]
    assert [p.question for p in filter_pairs(pairs, parse_query("status:pending"))] == ["Q3?"]


def test_a_reasoning_models_think_part_is_not_the_answer():
    from tunewiz.generators.prompts import ReplyError, parse_pairs

    draft = '<think>Maybe {"pairs": [{"question": "Draft?", "answer": "No."}]} ... better:</think>'
    final = '```json\n{"pairs": [{"question": "How tall is the tower?", "answer": "31 metres."}]}\n```'
    assert parse_pairs(draft + "\n" + final) == [("How tall is the tower?", "31 metres.")]
    with pytest.raises(ReplyError, match="still thinking"):
        parse_pairs('<think>{"pairs": [{"question": "Draft?", "answer": "No."}]} and then')
    # DeepSeek-R1's template opens <think> in the prompt: the reply holds only its end.
    pairs = '{"pairs": [{"question": "How tall is the tower?", "answer": "31 metres."}]}'
    assert parse_pairs("Okay, up to [3] pairs, maybe " + pairs.replace("31", "30") + "</think>" + pairs) == [
        ("How tall is the tower?", "31 metres.")]
    # Prose around the JSON: the value that holds the pairs, not a [3] before it.
    assert parse_pairs(f"Here are [3] pairs:\n{pairs}\nDone.") == [("How tall is the tower?", "31 metres.")]
