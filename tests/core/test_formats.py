"""Importing and exporting pairs: every format, and the bad inputs people really have."""

from __future__ import annotations

import json

import pytest

from tunewiz.dataset import Pair, PairStore
from tunewiz.dedup import near_duplicate_groups, normalize
from tunewiz.formats import EXPORT_FORMATS, FormatError, iter_pairs, read_pairs, write_pairs
from tunewiz.imports import import_file


def test_csv_with_any_case_and_multiline_cells(tmp_path):
    f = tmp_path / "qa.csv"
    f.write_text('QUESTION,answer\nWhat is H2O?,Water\n"Two\nlines?","Yes, two"\n')
    result = read_pairs(f)
    assert [(p.question, p.answer) for p in result.pairs] == [("What is H2O?", "Water"), ("Two\nlines?", "Yes, two")]
    assert result.pairs[1].source == "qa.csv:3"
    assert result.problems == []


def test_csv_instruction_output_and_prompt_response_columns(tmp_path):
    (tmp_path / "a.csv").write_text("instruction,input,output\nTranslate,hello,bonjour\n")
    (tmp_path / "b.csv").write_text("prompt,response\nHi,Hello\n")
    (tmp_path / "c.csv").write_text("Q,A\nWhy?,Because.\n")  # the short names a quick sheet has
    assert read_pairs(tmp_path / "a.csv").pairs[0].question == "Translate\n\nhello"
    assert read_pairs(tmp_path / "b.csv").pairs[0].answer == "Hello"
    assert (read_pairs(tmp_path / "c.csv").pairs[0].question, read_pairs(tmp_path / "c.csv").pairs[0].answer) == \
        ("Why?", "Because.")


def test_csv_bad_rows_are_reported_by_line_and_good_rows_kept(tmp_path):
    f = tmp_path / "qa.csv"
    f.write_bytes(b'Question,Answer\n'
                  b'Good one?,Yes\n'
                  b'"Broken quoting, "x",y\n'
                  b'Missing answer?,\n'
                  b'Only one column\n'
                  b'Last good?,Also yes\n')
    result = read_pairs(f)
    assert [p.question for p in result.pairs] == ["Good one?", "Last good?"]
    problems = [(p.where, p.reason.split(" (")[0]) for p in result.problems]
    assert problems == [("line 3", "broken quoting"), ("line 4", "the answer is empty"),
                        ("line 5", "only 1 columns; the answer is missing")]


def test_csv_fields_are_never_cut_apart_without_a_word(tmp_path):
    f = tmp_path / "qa.csv"
    f.write_bytes(b'question, answer\n'
                  b'What are the primary colours?, "red, yellow, blue"\n'  # a space before the quote
                  b'What is the capital of France?,Paris, which is also its largest city\n'  # unquoted comma
                  b'What is on the page?,"page one\x0cpage two"\n'  # a form feed from PDF text
                  b'Trailing comma?,Fine.,\n')
    result = read_pairs(f)
    assert [(p.question, p.answer) for p in result.pairs] == [
        ("What are the primary colours?", "red, yellow, blue"), ("What is on the page?", "page one\x0cpage two"),
        ("Trailing comma?", "Fine.")]
    assert [(p.where, p.reason.split(":")[0]) for p in result.problems] == [
        ("line 3", "3 fields where the header has 2")]


@pytest.mark.parametrize("name,text", [
    ("semicolons.csv", "Question;Answer\nWhat is 1,5 plus 1?;2,5.\n"),  # Excel where the decimal mark is a comma
    ("excel.csv", "sep=;\nQuestion;Answer\nWhat is 1,5 plus 1?;2,5.\n"),  # Excel's own hint
    ("tabs.tsv", "question\tanswer\nWhat is 1,5 plus 1?\t2,5.\n"),
    ("pasted.csv", "question\tanswer\nWhat is 1,5 plus 1?\t2,5.\n"),  # copied out of a spreadsheet
])
def test_csv_with_another_delimiter(tmp_path, name, text):
    (tmp_path / name).write_text(text + "Bad row?;x;y\n" * (name != "tabs.tsv" and "\t" not in text))
    result = read_pairs(tmp_path / name)
    assert [(p.question, p.answer) for p in result.pairs] == [("What is 1,5 plus 1?", "2,5.")]
    for problem in result.problems:  # numbered in the file, the `sep=` line counted
        assert problem.where == ("line 4" if name == "excel.csv" else "line 3") and "a semicolon" in problem.reason


def test_an_indented_block_keeps_its_first_lines_indentation(tmp_path):
    code = "    for i in range(3):\n        print(i)"
    (tmp_path / "code.jsonl").write_text(json.dumps({"question": "  Loop?  ", "answer": f"\n{code}\n\n"}) + "\n")
    assert [(p.question, p.answer) for p in read_pairs(tmp_path / "code.jsonl").pairs] == [("Loop?", code)]


def test_lines_end_only_at_line_ends(tmp_path):
    # U+2028 is a line break to str.splitlines but text to JSON and CSV; an old Mac CSV ends lines in CR.
    (tmp_path / "u.jsonl").write_text(json.dumps({"question": "Two\u2028lines?", "answer": "A\u2028B"},
                                                 ensure_ascii=False) + "\n", encoding="utf-8")
    assert [(p.question, p.answer) for p in read_pairs(tmp_path / "u.jsonl").pairs] == [("Two\u2028lines?", "A\u2028B")]
    (tmp_path / "mac.csv").write_bytes(b"question,answer\rQ1?,A1.\rQ2?,A2.\r")
    assert [p.answer for p in read_pairs(tmp_path / "mac.csv").pairs] == ["A1.", "A2."]


def test_a_json_object_is_one_record_or_holds_one_list(tmp_path):
    one = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U?"},
                        {"role": "assistant", "content": "A."}]}
    (tmp_path / "one.json").write_text(json.dumps(one))
    assert [(p.question, p.answer, p.system) for p in read_pairs(tmp_path / "one.json").pairs] == [("U?", "A.", "S")]
    (tmp_path / "kw.json").write_text(json.dumps({"question": "Q?", "answer": "A.", "keywords": ["k"]}))
    assert [p.answer for p in read_pairs(tmp_path / "kw.json").pairs] == ["A."]
    (tmp_path / "data.json").write_text(json.dumps({"data": [{"question": "Q?", "answer": "A."}]}))
    assert [p.answer for p in read_pairs(tmp_path / "data.json").pairs] == ["A."]
    # Two lists: the first alone was imported, the rest dropped without a word.
    (tmp_path / "split.json").write_text(json.dumps({"test": [{"question": "T?", "answer": "T."}],
                                                     "train": [{"question": "Q?", "answer": "A."}]}))
    with pytest.raises(FormatError, match=r"split.json: a JSON object with several lists \(test, train\)"):
        read_pairs(tmp_path / "split.json")


def test_csv_without_question_and_answer_columns(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("foo,bar\n1,2\n")
    with pytest.raises(FormatError, match=r"x.csv: line 1: expected a Question and an Answer column") as said:
        read_pairs(f)
    assert "header line" not in str(said.value)  # it has one, with other names
    f.write_text("What is 1+1?,Two.\n")  # no header line: said how to add one
    with pytest.raises(FormatError, match=r"without a header line needs one: `question,answer`"):
        read_pairs(f)


@pytest.mark.parametrize("content,message", [(b"", "the file is empty"), (b"  \n\n", "the file is empty"),
                                             (b"\x89PNG\r\n\x1a\n\x00\x00", "looks like a binary file")])
def test_unreadable_files(tmp_path, content, message):
    f = tmp_path / "data.csv"
    f.write_bytes(content)
    with pytest.raises(FormatError, match=message):
        read_pairs(f)


def test_jsonl_of_every_record_shape(tmp_path):
    records = [
        {"question": "q1", "answer": "a1"},
        {"instruction": "q2", "input": "", "output": "a2"},
        {"prompt": "q3", "response": "a3"},
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q4"},
                      {"role": "assistant", "content": "a4"}]},
        {"conversations": [{"from": "human", "value": "q5"}, {"from": "gpt", "value": "a5"},
                           {"from": "human", "value": "q6"}, {"from": "gpt", "value": "a6"}]},
    ]
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in records) + "\n{not json\n{\"question\": \"q only\"}\n")
    result = read_pairs(f)
    assert [p.question for p in result.pairs] == ["q1", "q2", "q3", "q4", "q6"]
    assert result.pairs[3].system == "be brief"
    assert result.pairs[4].history == [{"role": "user", "content": "q5"}, {"role": "assistant", "content": "a5"}]
    assert [(p.where, p.reason) for p in result.problems] == [
        ("line 6", "not valid JSON (Expecting property name enclosed in double quotes)"),
        ("line 7", "no answer field (answer, output, response)")]


def test_alpaca_json_list_with_a_bad_item(tmp_path):
    f = tmp_path / "alpaca.json"
    f.write_text(json.dumps([{"instruction": "q1", "input": "ctx", "output": "a1"},
                             {"instruction": "q2", "input": "", "output": ""}]))
    result = read_pairs(f)
    assert [(p.question, p.answer) for p in result.pairs] == [("q1\n\nctx", "a1")]
    assert [(p.where, p.reason) for p in result.problems] == [("item 2", "the answer is empty")]


def test_broken_json_document_names_the_line(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('[\n {"instruction": "q", "output": "a"},\n {"instruction": \n')
    with pytest.raises(FormatError, match="broken.json: line"):
        read_pairs(f)


def test_importing_twice_adds_nothing(tmp_path):
    f = tmp_path / "qa.csv"
    f.write_text("Question,Answer\nWhat is H2O?,Water\nwhat is  h2o,water.\nOther?,Thing\n")
    store = PairStore(tmp_path / "pairs.jsonl")
    first = import_file(store, f)
    assert (first.added, first.duplicates) == (2, 1)  # the second row is the first, normalized
    second = import_file(store, f)
    assert (second.added, second.duplicates) == (0, 3)
    assert len(PairStore(tmp_path / "pairs.jsonl")) == 2


def test_symbols_and_system_prompts_make_different_pairs(tmp_path):
    # Punctuation was dropped whole: C, C# and C++ were one question, two of them skipped as duplicates.
    (tmp_path / "c.csv").write_text("question,answer\nIs C compiled?,Yes.\nIs C# compiled?,Yes.\n"
                                    "Is C++ compiled?,Yes.\nis c compiled,yes\nIs it 5%?,No.\nIs it 5?,No.\n")
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"question": "Hi?", "answer": "Hello.", "system": s}) + "\n"
                                              for s in ("Answer in French.", "Answer in English.")))
    store = PairStore(tmp_path / "pairs.jsonl")
    assert (import_file(store, tmp_path / "c.csv").added, import_file(store, tmp_path / "s.jsonl").added) == (5, 2)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_export_format_reads_back(tmp_path, fmt):
    store = PairStore(tmp_path / "pairs.jsonl")
    store.add(read_pairs(_qa_csv(tmp_path)).pairs)
    out = tmp_path / f"out.{'json' if fmt == 'alpaca' else fmt if fmt == 'csv' else 'jsonl'}"
    assert write_pairs(store, out, fmt, default_system="Be kind.") == (2, 0)
    back = read_pairs(out)
    assert [(p.question, p.answer) for p in back.pairs] == [("Q, with comma?", 'A "quoted"'), ("Q2", "A2")]
    assert back.problems == []


def _qa_csv(tmp_path):
    f = tmp_path / "in.csv"
    f.write_text('Question,Answer\n"Q, with comma?","A ""quoted"""\nQ2,A2\n')
    return f


def test_normalize_and_near_duplicates():
    assert normalize("  What IS   the answer?! ") == "what is the answer"
    texts = ["What is the boiling point of water at sea level?",
             "What is the boiling point of water at sea level in Celsius?",
             "Who wrote the novel Moby Dick?",
             "what is the boiling point of water at sea level"]
    groups = near_duplicate_groups(texts, threshold=0.6)
    assert sorted(sorted(g) for g in groups) == [[0, 1, 3]]


def test_duplicate_index_finds_reworded_questions_and_not_others():
    from tunewiz.dedup import DuplicateIndex

    index = DuplicateIndex([("What is the boiling point of water at sea level in degrees Celsius?", "100")])
    assert index.is_exact("what is the boiling point of water at sea level in degrees celsius", "100.")
    assert index.is_near("What is the boiling point of water at sea level in degrees Celsius, roughly?")
    assert not index.is_near("Who wrote the novel Moby Dick and when was it published?")
    index.add("Who wrote the novel Moby Dick and when was it published?", "Melville, 1851")
    assert index.is_near("Who wrote the novel Moby Dick, and when was it published?")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_content_parts_are_joined_as_text_never_stored_as_a_structure(tmp_path):
    f = write_jsonl(tmp_path / "parts.jsonl", [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "Velmora?"}]},
                      {"role": "assistant", "content": [{"type": "text", "value": "An institute."}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                   {"type": "image_url", "image_url": {"url": "x.png"}}]},
                      {"role": "assistant", "content": "A cat."}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Part A"}, {"type": "text", "text": "Part B?"}]},
                      {"role": "assistant", "content": "Both."}]},
        {"question": {"text": "an object"}, "answer": "no"},
        {"question": "Is it true?", "answer": True},
        {"question": "What year?", "answer": 1969},
    ])
    result = read_pairs(f)
    assert [(p.question, p.answer) for p in result.pairs] == [("What is Velmora?", "An institute."),
                                                             ("Part A\nPart B?", "Both."), ("What year?", "1969")]
    problems = [(p.where, p.kind, p.reason) for p in result.problems]
    assert problems[0][:2] == ("line 2", "image parts") and "'messages'[0].content[1] is an image_url part" in problems[0][2]
    assert problems[1] == ("line 4", "bad rows", "'question': expected text, got an object with text")
    assert problems[2] == ("line 5", "bad rows", "'answer': expected text, got true/false")
    assert not any("{" in p.question or "[" in p.answer for p in result.pairs)


def test_tool_turns_are_skipped_naming_the_line(tmp_path):
    f = write_jsonl(tmp_path / "tools.jsonl", [
        {"messages": [{"role": "user", "content": "Weather?"},
                      {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
                      {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}]},
        {"conversations": [{"from": "human", "value": "Weather?"}, {"from": "function_call", "value": "{}"},
                           {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "Sunny."}]},
        {"question": "Plain?", "answer": "Yes."},
    ])
    result = read_pairs(f)
    assert [p.question for p in result.pairs] == ["Plain?"]
    assert [(p.where, p.kind) for p in result.problems] == [("line 1", "tool turns"), ("line 2", "tool turns")]
    assert "'messages'[1] is a tool turn" in result.problems[0].reason


def test_preference_data_is_refused_once_or_imported_with_chosen(project, tmp_path, capsys):
    from tunewiz.cli import main

    f = write_jsonl(tmp_path / "dpo.jsonl", [
        {"prompt": "Best colour?", "chosen": "Teal.", "rejected": "Beige."},
        {"prompt": [{"role": "user", "content": "Best fruit?"}],
         "chosen": [{"role": "assistant", "content": "Mango."}], "rejected": [{"role": "assistant", "content": "No."}]},
    ])
    assert main(["import", "-p", str(project.root), str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("preference data") == 1 and "line 1" in err and "--chosen" in err
    assert main(["import", "-p", str(project.root), "--chosen", str(f)]) == 0
    from tunewiz.dataset import PairStore

    assert sorted((p.question, p.answer) for p in PairStore(project.pairs_path)) == [
        ("Best colour?", "Teal."), ("Best fruit?", "Mango.")]
    kto = write_jsonl(tmp_path / "kto.jsonl", [{"prompt": "Tea?", "completion": "Yes.", "label": True},
                                               {"prompt": "Tea?", "completion": "Never.", "label": False}])
    assert [(p.question, p.answer) for p in read_pairs(kto, chosen=True).pairs] == [("Tea?", "Yes.")]


def test_a_file_of_which_nothing_imports_says_so_first(project, tmp_path):
    from tunewiz.dataset import PairStore
    from tunewiz.imports import import_file

    f = write_jsonl(tmp_path / "images.jsonl", [
        {"messages": [{"role": "user", "content": [{"type": "image", "image": "a.png"}]},
                      {"role": "assistant", "content": "A dog."}]}] * 3 + [{"nothing": 1}])
    report = import_file(PairStore(project.pairs_path), f)
    assert report.summary() == f"{f}: nothing could be imported: all 4 rows were skipped (3 image parts, 1 bad row)"


CONVERSATION = [("I want to cook dinner.", "What do you have?"),
                ("I have chicken, bell peppers and rice.", "Make a stir-fry."),
                ("How long does it take?", "About 25 minutes.")]


def test_multi_turn_conversations_import_whole(project, tmp_path):
    from tunewiz.dataset import PairStore
    from tunewiz.imports import import_file

    sharegpt = [{"from": "system", "value": "You are a cook."}] + [
        turn for q, a in CONVERSATION for turn in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]
    openai = [{"role": "system", "content": "You are a cook."}] + [
        turn for q, a in CONVERSATION for turn in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    openai[2] = openai[2] | {"weight": 0}  # "What do you have?" is context, not trained on
    openai[-1] = {"role": "assistant", "content": "About 20 minutes."}
    f = write_jsonl(tmp_path / "chats.jsonl", [{"conversations": sharegpt}, {"messages": openai},
                                               {"question": "Plain?", "answer": "Yes."}])
    report = import_file(PairStore(project.pairs_path), f)
    assert report.summary() == f"{f}: added 3 samples (1 QA pairs, 2 conversations of 6 turns)"
    by_source = {p.source: p for p in PairStore(project.pairs_path)}
    chat = by_source["chats.jsonl:1"]
    assert (chat.system, chat.question, chat.answer) == ("You are a cook.", "How long does it take?", "About 25 minutes.")
    assert [t["content"] for t in chat.history] == [text for pair in CONVERSATION[:2] for text in pair]
    assert by_source["chats.jsonl:2"].history[1] == {"role": "assistant", "content": "What do you have?", "weight": 0}


@pytest.mark.parametrize("fmt", ["jsonl", "sharegpt", "openai", "csv", "alpaca"])
def test_round_trip_keeps_every_sample(project, tmp_path, fmt):
    from tunewiz.dataset import Pair
    from tunewiz.formats import write_pairs

    history = [{"role": "user", "content": CONVERSATION[0][0]},
               {"role": "assistant", "content": CONVERSATION[0][1], "weight": 0}]  # context, not trained on
    pairs = [Pair(question="What is X?", answer="X is 1.", system="Be brief."),
             Pair(question=CONVERSATION[1][0], answer=CONVERSATION[1][1], history=history)]
    out = tmp_path / f"out.{'csv' if fmt == 'csv' else 'json' if fmt == 'alpaca' else 'jsonl'}"
    written, left_out = write_pairs(pairs, out, fmt)
    expected = pairs[:1] if fmt in ("csv", "alpaca") else pairs
    assert (written, left_out) == (len(expected), len(pairs) - len(expected))
    back = read_pairs(out)
    assert not back.problems
    assert [(p.system, p.question, p.answer, p.history) for p in back.pairs] == [
        (p.system, p.question, p.answer, p.history) for p in expected]


@pytest.mark.parametrize("turns,message", [
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}],
     "'messages'[1]: two user turns in a row"),
    ([{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "b"}], "an assistant turn before any user turn"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}], "to learn from"),
    ([{"role": "user", "content": "a"}, {"role": "narrator", "content": "b"}], "unknown role 'narrator'"),
])
def test_broken_conversations_name_the_turn(tmp_path, turns, message):
    result = read_pairs(write_jsonl(tmp_path / "bad.jsonl", [{"messages": turns}]))
    assert not result.pairs and message in result.problems[0].reason


def test_a_path_typed_quoted_or_with_escaped_spaces_is_the_file(tmp_path, monkeypatch):
    # What a terminal's drag and drop and a shell's tab completion write into the import field.
    from tunewiz.imports import typed_path

    f = tmp_path / "my data" / "qa copy.csv"
    f.parent.mkdir()
    f.write_text("question,answer\nQ?,A.\n")
    for typed in (f"'{f}'", f'"{f}"', str(f).replace(" ", "\\ "), f"  {f}  "):
        assert typed_path(typed) == f, typed
    monkeypatch.chdir(tmp_path)
    assert typed_path("'my data/qa copy.csv'") == f
    assert typed_path("'unclosed") == tmp_path / "'unclosed"  # said missing by the import, as typed


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_review_survives_export_data_then_import(tmp_path, capsys, fmt):
    # A rejected pair imported back as pending would be trained: tunewiz's own exports keep the review.
    from tunewiz.cli import main
    from tunewiz.project import create_project

    source = create_project(tmp_path / "a")
    store = PairStore(source.pairs_path)
    store.add([Pair("What is A?", "A is one.", status="accepted"),
               Pair("What is B?", "B is two.", status="rejected", reason="unsupported"),
               Pair("What is C?", "C is three.")])
    out = tmp_path / f"all.{fmt}"
    assert main(["export-data", "-p", str(source.root), "--format", fmt, "--status",
                 "accepted,pending,rejected", str(out)]) == 0
    target = create_project(tmp_path / "b")
    assert main(["import", "-p", str(target.root), str(out)]) == 0
    assert "added 3 pairs (1 accepted, 1 pending, 1 rejected, as the file says)" in capsys.readouterr().out
    got = {p.question: (p.status, p.reason) for p in PairStore(target.pairs_path)}
    assert got == {"What is A?": ("accepted", ""), "What is C?": ("pending", ""),
                   "What is B?": ("rejected", "unsupported" if fmt == "jsonl" else "")}

    again = create_project(tmp_path / "c")  # --status says it for every pair
    assert main(["import", "-p", str(again.root), "--status", "pending", str(out)]) == 0
    assert {p.status for p in PairStore(again.pairs_path)} == {"pending"}


def test_a_status_tunewiz_does_not_know_imports_as_pending(tmp_path):
    f = tmp_path / "other.csv"
    f.write_text("question,answer,status\nWhat is A?,A is one.,approved\nWhat is B?,B is two., Rejected \n")
    pairs = [p for p in iter_pairs(f) if isinstance(p, Pair)]
    assert [p.status for p in pairs] == ["pending", "rejected"]


def test_a_number_as_an_answer_keeps_the_digits_it_was_written_with(tmp_path):
    f = tmp_path / "prices.jsonl"
    f.write_text('{"question": "What does a ticket cost?", "answer": 2.50}\n'
                 '{"question": "How small is the gap?", "answer": 1e-7}\n'
                 '{"question": "How many stations?", "answer": 14}\n'
                 '{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello.", '
                 '"weight": 1.0}]}\n')
    pairs = read_pairs(f).pairs
    assert [p.answer for p in pairs] == ["2.50", "1e-7", "14", "Hello."]


def test_export_data_writes_rewordings_that_train_when_asked(tmp_path, capsys):
    from tunewiz.cli import main
    from tunewiz.evalsets import REWORDINGS_FILE, Rewording, RewordingStore
    from tunewiz.project import create_project

    project = create_project(tmp_path / "a")
    capital = Pair("What is the capital of Norland?", "Quillport.", status="accepted")
    dropped = Pair("What is B?", "B is two.", status="rejected")
    PairStore(project.pairs_path).add([capital, dropped])
    RewordingStore(project.path(REWORDINGS_FILE)).add([
        Rewording(capital.id, "Which city is Norland's capital?", capital.question, source="file", use="train"),
        Rewording(capital.id, "Name the capital of Norland.", capital.question, source="file"),  # the check's
        Rewording(dropped.id, "Tell me B.", dropped.question, source="file", use="train")])  # its pair rejected
    out = tmp_path / "out.jsonl"
    assert main(["export-data", "-p", str(project.root), "--format", "jsonl", str(out)]) == 0
    assert "Left out the rewordings that train beside these pairs (1; --train-rewordings" in capsys.readouterr().out
    assert [r["question"] for r in map(json.loads, out.read_text().splitlines())] == [capital.question]
    assert main(["export-data", "-p", str(project.root), "--format", "jsonl", "--train-rewordings", "--force",
                 str(out)]) == 0
    assert "Wrote 2 samples to" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["question"], r["answer"]) for r in rows] == [(capital.question, "Quillport."),
                                                           ("Which city is Norland's capital?", "Quillport.")]


def test_export_data_never_writes_over_the_project_or_an_existing_file(tmp_path, capsys):
    from tunewiz.cli import main
    from tunewiz.project import create_project

    project = create_project(tmp_path / "a")
    PairStore(project.pairs_path).add([Pair("What is A?", "A is one.")])
    kept = {path: path.read_bytes() for path in (project.pairs_path, project.file)}
    for target in (project.pairs_path, project.file, project.root / "runs" / "x.csv"):
        assert main(["export-data", "-p", str(project.root), "--format", "csv", str(target)]) == 2
        assert "a file tunewiz keeps for this project" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in kept} == kept
    assert not (project.root / "runs" / "x.csv").exists()
    mine = tmp_path / "mine.csv"
    mine.write_text("my own notes\n")
    assert main(["export-data", "-p", str(project.root), "--format", "csv", str(mine)]) == 2
    assert "mine.csv exists; --force replaces it" in capsys.readouterr().err
    assert mine.read_text() == "my own notes\n"
    assert main(["export-data", "-p", str(project.root), "--format", "csv", "--force", str(mine)]) == 0
    assert "What is A?" in mine.read_text()
    assert main(["export-data", "-p", str(project.root), "--format", "csv", str(tmp_path / "no" / "x.csv")]) == 2
    assert "no folder" in capsys.readouterr().err and not (tmp_path / "no").exists()
    assert main(["export-data", "-p", str(project.root), "--format", "csv", "--status", "acepted",
                 str(tmp_path / "y.csv")]) == 2
    assert "--status: no pair status 'acepted'" in capsys.readouterr().err


def test_pairs_export_data_and_import_say_which_lines_of_the_journal_they_could_not_read(tmp_path, capsys):
    from tunewiz.cli import main
    from tunewiz.project import create_project

    project = create_project(tmp_path / "a")
    PairStore(project.pairs_path).add([Pair("What is A?", "A is one."), Pair("What is B?", "B is two.")])
    lines = project.pairs_path.read_text().splitlines()
    project.pairs_path.write_text(lines[0].replace('"answer"', '"answer" BROKEN') + "\n" + lines[1] + "\n")
    assert main(["pairs", "-p", str(project.root)]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 unreadable line (line 1)" in captured.err and "1 pairs" in captured.out
    assert main(["export-data", "-p", str(project.root), "--format", "csv", str(tmp_path / "out.csv")]) == 0
    assert "skipped 1 unreadable line (line 1)" in capsys.readouterr().err


def test_pairs_are_never_appended_to_a_file_that_holds_none(tmp_path, capsys):
    # dataset.pairs_file naming the user's notes: import appended JSON lines to them
    from tunewiz.cli import main
    from tunewiz.project import create_project

    project = create_project(tmp_path / "a")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nabout volcanoes\n")
    assert main(["config", "-p", str(project.root), "dataset.pairs_file", str(notes)]) == 0
    (tmp_path / "qa.csv").write_text("question,answer\nWhat is A?,A is one.\n")
    assert main(["import", "-p", str(project.root), str(tmp_path / "qa.csv")]) != 0
    assert "no line of it is a pair" in capsys.readouterr().err
    assert notes.read_text() == "my notes\nabout volcanoes\n"
