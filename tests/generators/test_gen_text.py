"""Documents, chunking, reply parsing and the quality gate: the parts with no server."""

from __future__ import annotations

import pytest

from tunewiz.errors import TunewizError
from tunewiz.generators.chunking import paragraphs, split_text
from tunewiz.generators.documents import find_documents, html_to_text, read_document
from tunewiz.generators.prompts import ReplyError, parse_pairs, parse_score, parse_subtopics, pairs_schema
from tunewiz.generators.quality import QualityGate, shape_problem
from tunewiz.generators.runner import retry_after_s


# ---------------------------------------------------------------- chunking

def test_chunks_are_whole_paragraphs_within_the_limit():
    paras = [f"Paragraph {i} " + "word " * 30 for i in range(10)]  # ~165 characters each
    chunks = split_text("\n\n".join(paras), chunk_chars=400, overlap=0)
    assert all(len(c) <= 400 for c in chunks)
    rebuilt = [p for c in chunks for p in paragraphs(c)]
    assert rebuilt == [" ".join(p.split()) for p in paras]  # every paragraph once, in order, unbroken


def test_overlap_repeats_the_last_paragraphs_of_the_previous_chunk():
    paras = [f"P{i} " + "x" * 100 for i in range(8)]
    chunks = split_text("\n\n".join(paras), chunk_chars=350, overlap=120)
    assert len(chunks) > 2
    for before, after in zip(chunks, chunks[1:]):
        assert paragraphs(after)[0] == paragraphs(before)[-1]
    seen = [p for c in chunks for p in paragraphs(c)]
    assert set(seen) == {" ".join(p.split()) for p in paras}


def test_a_paragraph_longer_than_a_chunk_is_cut_at_sentence_ends():
    sentence = "This sentence is about forty characters. "
    chunks = split_text(sentence * 30, chunk_chars=200, overlap=0)
    assert all(len(c) <= 200 for c in chunks)
    assert all(c.endswith(".") for c in chunks)
    assert "".join(c.replace(" ", "") for c in chunks) == (sentence * 30).replace(" ", "")


# ---------------------------------------------------------------- documents

def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, built by hand (xref offsets included)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_documents_of_every_kind_and_folders(project):
    docs = project.root / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("Plain text about ferns.", encoding="utf-8")
    (docs / "sub" / "b.md").write_text("# Mosses\n\nMosses have no roots.", encoding="utf-8")
    (docs / "c.html").write_text("<html><head><style>p{}</style><script>var x=1;</script></head>"
                                 "<body><h1>Algae</h1><p>Algae &amp; light.</p></body></html>", encoding="utf-8")
    (docs / "d.pdf").write_bytes(_tiny_pdf("Lichens grow on rocks."))
    (docs / "ignored.csv").write_text("q,a\n", encoding="utf-8")
    (docs / ".hidden.txt").write_text("secret", encoding="utf-8")
    project.set("generator.documents", ["docs"])
    files = find_documents(project)
    assert [f.name for f in files] == ["a.txt", "c.html", "d.pdf", "b.md"]
    project.set("generator.documents", ["docs", "docs/a.txt", "./docs/sub/b.md"])  # named twice: once
    assert [f.name for f in find_documents(project)] == ["a.txt", "c.html", "d.pdf", "b.md"]
    project.set("generator.documents", ["docs"])
    texts = {f.name: read_document(f) for f in files}
    assert texts["c.html"] == "Algae\n\nAlgae & light."
    assert "Lichens grow on rocks." in texts["d.pdf"]
    assert "Mosses have no roots." in texts["b.md"]


def test_missing_or_unsupported_documents_are_named(project):
    project.set("generator.documents", ["nowhere.txt"])
    with pytest.raises(TunewizError, match=r"generator.documents: .*nowhere.txt does not exist"):
        find_documents(project)
    (project.root / "table.csv").write_text("x", encoding="utf-8")
    project.set("generator.documents", ["table.csv"])
    with pytest.raises(TunewizError, match="table.csv is not a supported document"):
        find_documents(project)
    bad = project.root / "latin.txt"
    bad.write_bytes(b"caf\xe9")
    with pytest.raises(TunewizError, match="latin.txt: not utf-8"):
        read_document(bad)
    notepad = project.root / "notepad.txt"  # Windows Notepad's "Unicode": UTF-16 with its byte-order mark
    notepad.write_bytes(b"\xff\xfe" + "Café au lait.".encode("utf-16-le"))
    assert read_document(notepad) == "Café au lait."


def test_an_unreadable_document_is_left_out_and_said_not_the_end_of_the_run(project):
    from tunewiz.dataset import PairStore
    from tunewiz.generators.runner import Planner

    docs = project.root / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("Ferns grow in shade. " * 20, encoding="utf-8")
    (docs / "old.txt").write_bytes(b"caf\xe9 " * 50)
    project.set("generator.documents", ["docs"])
    planner = Planner(project, PairStore(project.pairs_path), set())
    assert planner.document_items() and len(planner.unreadable) == 1 and "old.txt: not utf-8" in planner.unreadable[0]


def test_html_text_keeps_blocks_apart():
    assert html_to_text("<p>One</p><p>Two <b>bold</b></p><ul><li>a</li><li>b</li></ul>") == "One\n\nTwo bold\n\na\n\nb"
    # </head> may be left out; an escaped entity stays escaped once.
    assert html_to_text("<html><head><title>T</title><body><p>Rivers flow.</p><p>&amp;lt;b&amp;gt;</p>") == \
        "Rivers flow.\n\n&lt;b&gt;"


# ---------------------------------------------------------------- parsing replies

@pytest.mark.parametrize("content", [
    '{"pairs": [{"question": "What is a fern?", "answer": "A plant."}]}',
    'Here you go:\n```json\n{"pairs": [{"question": "What is a fern?", "answer": "A plant."}]}\n```',
    'Sure! {"items": [{"Question": "What is a fern?", "Answer": "A plant."}]} Hope it helps.',
    '[{"q": "What is a fern?", "a": "A plant."}]',
    '{"question": "What is a fern?", "answer": "A plant."}',
])
def test_tolerant_parsing_finds_the_pairs(content):
    assert parse_pairs(content) == [("What is a fern?", "A plant.")]


def test_raw_line_breaks_inside_strings_are_kept():
    # What SmolLM2 wrote through llama-cpp-python's JSON grammar: strict JSON refuses it.
    content = '{"pairs": [{"question": "What is a fern?", "answer": "A plant.\nIt has\tfronds."}]}'
    assert parse_pairs(content) == [("What is a fern?", "A plant.\nIt has\tfronds.")]


@pytest.mark.parametrize("content, reason", [
    ("", "empty reply"),
    ("I cannot help with that.", "no JSON"),
    ('{"pairs": [{"question": "What is', "truncated"),
    ('{"pairs": [{"title": "x"}]}', "without question/answer"),
])
def test_unusable_replies_say_why(content, reason):
    with pytest.raises(ReplyError, match=reason):
        parse_pairs(content)


def test_subtopics_and_scores():
    assert parse_subtopics('{"subtopics": ["Light", "light", " Water "]}') == ["Light", "Water"]
    # The embedded model's: padded with "...", lettered and numbered.
    assert parse_subtopics('["...", "A: The largest volcano.", "2. Lava flows", "- Ash", "b) Vents"]') == \
        ["The largest volcano.", "Lava flows", "Ash", "Vents"]
    assert parse_subtopics('["E. coli infections", "J. R. R. Tolkien\'s languages"]') == \
        ["E. coli infections", "J. R. R. Tolkien's languages"]  # initials are no list marks
    assert parse_score('{"score": 7}') == 7
    with pytest.raises(ReplyError):
        parse_score('{"score": 11}')
    schema = pairs_schema(3, "short")
    assert (schema["properties"]["pairs"]["minItems"], schema["properties"]["pairs"]["maxItems"]) == (1, 3)


# ---------------------------------------------------------------- quality

def test_shape_problems():
    assert shape_problem("  ", "An answer.") == "empty"
    assert shape_problem("Why?", "Because the sky scatters blue light.") == "too_short"
    assert shape_problem("What is a fern?", "no") == "too_short"
    assert shape_problem("What is a fern?", "What is a fern?") == "echoes_question"
    assert shape_problem("What is a fern?", "what is a fern? yes") == "echoes_question"
    assert shape_problem("What is a fern?", "A plant that reproduces with spores.") is None


def test_quality_gate_drops_duplicates_of_existing_and_new_pairs():
    gate = QualityGate([("What is the capital of France?", "Paris.")])
    assert gate.screen("what is the capital of france", "paris") == "duplicate"
    assert gate.screen("What is the capital city of France?", "It is Paris.") is None
    assert gate.screen("What is the capital of France, please?", "Paris, of course.") == "near_duplicate"
    assert gate.keep("How many legs does a spider have?", "Eight.")
    assert not gate.keep("How many legs does a spider have?", "Eight.")
    assert gate.dropped == {"duplicate": 1}


def test_retry_after_in_seconds_and_dates():
    class Reply:
        def __init__(self, headers):
            self.response = type("R", (), {"headers": headers})()

    assert retry_after_s(Reply({"retry-after": "3"})) == 3.0
    assert retry_after_s(Reply({"retry-after-ms": "1500"})) == 1.5
    assert retry_after_s(Reply({})) is None
    assert 0 <= retry_after_s(Reply({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
