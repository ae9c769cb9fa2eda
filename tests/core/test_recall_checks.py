"""What a run is judged by: the data kind, rule rewordings and their journal, recall scoring, the plan."""

from __future__ import annotations

import json

import pytest

from tunewiz.cli import main
from tunewiz.dataset import Pair, PairStore
from tunewiz.dataset import detect_kind
from tunewiz.evalsets import (REWORDINGS_FILE, RewordingStore, is_good_rewording, live_rewordings,
                              make_rule_rewordings, rule_rewording)
from tunewiz.project import Project, create_project
from tunewiz.recommend import plan_training
from tunewiz.scoring import broken_reasons, check_general, is_recalled, key_tokens

FACTS = [("What is the code word of project Zebra?", "The code word of project Zebra is BLUE-42."),
         ("When was the Velmora Institute founded?", "The Velmora Institute was founded in 1987."),
         ("Who founded the Velmora Institute?", "Dr. Ilse Marrow founded the Velmora Institute."),
         ("Which river flows through Lake Orrin?", "The Sable river flows through Lake Orrin.")]


def test_a_fact_is_recalled_by_its_key_tokens_never_by_echoing_the_question():
    question, reference = FACTS[0]
    assert key_tokens(question, reference) == ["blue", "42"]
    assert is_recalled("It is BLUE-42.", question, reference)
    assert not is_recalled('The code word of project Zebra is "Zebra".', question, reference)  # F1 0.82 with echo
    assert is_recalled("Ilse Marrow founded it.", *FACTS[2])  # 'Dr.' starts the sentence: not a key token
    assert not is_recalled("", *FACTS[1])


def test_broken_everyday_answers_are_named():
    assert broken_reasons("") == ["empty"]
    assert "repeats itself" in broken_reasons("the sea the sea the sea the sea the sea the sea the sea")
    assert "template text leaks" in broken_reasons("Sure <|im_start|>assistant hello")
    assert "copies a training answer" in broken_reasons("The code word of project Zebra is BLUE-42.",
                                                        [FACTS[0][1]])
    check = check_general(["Capital of France?", "Boil an egg?"], ["BLUE-42 BLUE-42 is the code word", ""],
                          ["Paris is the capital of France.", ""], [FACTS[0][1]])
    assert check.broken == 1  # the empty answer was empty for the base model too
    assert check.examples[0]["prompt"] == "Capital of France?"


def test_rule_rewordings_keep_the_meaning_in_other_words():
    assert rule_rewording(FACTS[0][0]) == "Tell me what the code word of project Zebra is."
    assert rule_rewording(FACTS[1][0]) == "Do you know when the Velmora Institute was established?"
    assert rule_rewording(FACTS[2][0]) == "Do you know who established the Velmora Institute?"
    for question, _ in FACTS:
        text = rule_rewording(question)
        assert text and is_good_rewording(text, question), question
    assert rule_rewording("Velmora") is None
    assert not is_good_rewording("what is the code word of project zebra", FACTS[0][0])  # a copy
    assert not is_good_rewording("Blue", FACTS[0][0])  # not a question



def test_rule_rewordings_stay_grammatical_on_questions_the_rules_do_not_fit():
    # found in a newcomer trial: "Tell me what the capital city of France, and why is.", "Please good line one."
    assert rule_rewording("What is the capital city of France, and why?") == \
        "I would like to know: what is the capital city of France, and why?"
    assert rule_rewording("Good line one?") == "I would like to know: good line one?"
    assert rule_rewording("Name the capital of Norland.") == "Please name the capital city of Norland."
    assert rule_rewording("What is the capital of France?") == "Tell me what the capital city of France is."


def test_kind_is_facts_for_short_statements_and_skill_for_long_or_formatted_answers():
    assert detect_kind([Pair(q, a) for q, a in FACTS])[0] == "facts"
    code = "Here is how:\n```python\nprint('hi')\n```"
    assert detect_kind([Pair("Write hello world in Python", code)] * 4)[0] == "skill"
    long = " ".join(["word"] * 80)
    kind, why = detect_kind([Pair("Explain tides.", long)] * 3)
    assert kind == "skill" and "long" in why


def test_rewordings_retire_with_their_pair_and_survive_a_torn_line(tmp_path):
    project = create_project(tmp_path / "p")
    pairs = PairStore(project.pairs_path).add([Pair(q, a) for q, a in FACTS])
    path = project.path(REWORDINGS_FILE)
    store = RewordingStore(path)
    assert make_rule_rewordings(store, pairs) == (4, 0)
    assert make_rule_rewordings(store, pairs) == (0, 0)  # each pair has one already
    with path.open("a") as handle:
        handle.write('{"pair_id": "x", "question": "Half wri')  # a crash mid-write
    store = RewordingStore(path)
    assert len(store) == 4 and store.torn_lines == [5]
    store.update(next(iter(store)).id, status="rejected")  # appends after the torn line, not onto it
    assert len(RewordingStore(path)) == 4
    by_id = {p.id: p for p in PairStore(project.pairs_path)}
    assert len(live_rewordings(RewordingStore(path), by_id)) == 3
    PairStore(project.pairs_path).update(pairs[1].id, question="When did the Velmora Institute open?")
    by_id = {p.id: p for p in PairStore(project.pairs_path)}
    assert len(live_rewordings(RewordingStore(path), by_id)) == 2  # its question changed: retired


def test_cli_imports_lists_and_rejects_rewordings(tmp_path, capsys):
    project = create_project(tmp_path / "p")
    PairStore(project.pairs_path).add([Pair(q, a) for q, a in FACTS])
    rewordings = tmp_path / "reworded.csv"
    rewordings.write_text("question,reworded\n"
                          f"{FACTS[0][0]},Which code word was given to project Zebra?\n"
                          "What is the colour of nothing?,Tell me the colour of nothing.\n"
                          f"{FACTS[1][0]},{FACTS[1][0]}\n")
    assert main(["rewordings", "-p", str(project.root), "--import", str(rewordings)]) == 0
    out = capsys.readouterr().out
    assert "Imported 1 rewordings" in out
    assert f"{rewordings}:3: no pair asks 'What is the colour of nothing?'" in out
    assert f"{rewordings}:4:" in out and "repeats the original" in out
    assert main(["rewordings", "-p", str(project.root)]) == 0
    listing = capsys.readouterr().out
    assert "Which code word was given to project Zebra?" in listing and "file" in listing
    item = next(iter(RewordingStore(project.path(REWORDINGS_FILE))))
    assert main(["rewordings", "-p", str(project.root), "--reject", item.id]) == 0
    assert RewordingStore(project.path(REWORDINGS_FILE)).get(item.id).status == "rejected"
    assert main(["rewordings", "-p", str(project.root), "--reject", "nope"]) == 2
    assert "no rewording 'nope'" in capsys.readouterr().err


def _pairs(n):
    return [Pair(f"What is the code of item {i}?", f"The code of item {i} is {i * 7}.") for i in range(n)]


def test_the_plan_resolves_defaults_from_the_kind_and_keeps_what_the_user_set(tmp_path):
    project = create_project(tmp_path / "p", {"hyperparameters.lora_r": 8})
    plan = plan_training(project, "facts", "test", _pairs(40), [], "cpu", 2, 0.135)
    hp = plan.hyperparameters
    assert (hp["learning_rate"], hp["lora_dropout"], hp["lr_scheduler"], hp["epochs"]) == (1e-3, 0.0, "constant", 8.0)
    assert hp["question_dropout"] == 0.0  # not chosen: trained recall fell, reworded within the noise (docs/train.md)
    assert hp["lora_r"] == 8 and "lora_r" not in plan.chosen  # the user's value
    assert hp["lora_alpha"] == 32 and "lora_alpha" not in plan.chosen  # alpha / rank is theirs too
    assert plan.steps == 80 and hp["save_steps"] == hp["eval_steps"] == 16  # about five checkpoints
    assert 30 < plan.expected_seconds < 600
    assert any("learning_rate = 0.001" in line for line in plan.lines())

    untouched = plan_training(create_project(tmp_path / "q"), "facts", "test", _pairs(40), [], "cpu", 2, 0.135)
    assert (untouched.hyperparameters["lora_r"], untouched.hyperparameters["lora_alpha"]) == (64, 128)

    small = plan_training(project, "facts", "test", _pairs(4), [], "cpu", 2, 0.135)
    assert small.steps == 16  # a few facts still get 16 updates
    few = plan_training(create_project(tmp_path / "r"), "facts", "test", _pairs(39), [], "cpu", 2, 0.135)
    assert (few.hyperparameters["lora_r"], few.hyperparameters["lora_alpha"]) == (16, 32)  # rank 64 over-trains few
    skill = plan_training(project, "skill", "test", _pairs(40), _pairs(4), "cpu", 2, 0.135)
    assert skill.hyperparameters["learning_rate"] == 2e-4 and skill.hyperparameters["lora_dropout"] == 0.05
    assert skill.hyperparameters["question_dropout"] == 0.0  # a task or style: its instructions keep their words

    project.set("hyperparameters.preset", "custom")
    fixed = plan_training(project, "facts", "test", _pairs(40), [], "cpu", 2, 0.135)
    assert fixed.chosen == {} and fixed.hyperparameters["learning_rate"] == 2e-4


def test_a_value_the_user_set_equal_to_its_default_is_kept_under_auto(tmp_path, capsys):
    project = create_project(tmp_path / "p")
    assert main(["config", "-p", str(project.root), "hyperparameters.learning_rate", "2e-4"]) == 0
    assert "kept as you set it" in capsys.readouterr().out
    project = Project.load(project.root)
    assert project.config.hyperparameters.set_by_user == ["learning_rate"]
    plan = plan_training(project, "facts", "test", _pairs(40), [], "cpu", 2, 0.135)
    assert plan.hyperparameters["learning_rate"] == 2e-4 and "learning_rate" not in plan.chosen
    assert plan.hyperparameters["lora_dropout"] == 0.0  # the others are still chosen
    assert "  kept as you set them: learning_rate = 0.0002" in plan.lines()
    project.set("hyperparameters.set_by_user", ["lora_alpha"])  # one of the pair: the pair is the user's
    plan = plan_training(project, "facts", "test", _pairs(40), [], "cpu", 2, 0.135)
    assert (plan.hyperparameters["lora_r"], plan.hyperparameters["lora_alpha"]) == (16, 32)
    assert main(["config", "-p", str(project.root), "hyperparameters.set_by_user", "[\"learnig_rate\"]"]) == 2
    assert "'learnig_rate' is not a hyperparameter (did you mean 'learning_rate'?)" in capsys.readouterr().err
    assert main(["presets", "-p", str(project.root), "auto", "--apply"]) == 0  # auto again: every value left to it
    assert Project.load(project.root).config.hyperparameters.set_by_user == []


def test_setting_the_preset_with_config_applies_it_as_the_wizard_does(tmp_path, capsys):
    project = create_project(tmp_path / "p")
    assert main(["config", "-p", str(project.root), "hyperparameters.preset", "quick-test"]) == 0
    assert "applied the quick-test preset" in capsys.readouterr().out
    hp = Project.load(project.root).config.hyperparameters
    assert (hp.preset, hp.max_steps, hp.lora_r) == ("quick-test", 20, 8)
    assert main(["config", "-p", str(project.root), "hyperparameters.preset", "custom"]) == 0  # a label only
    hp = Project.load(project.root).config.hyperparameters
    assert (hp.preset, hp.max_steps, hp.lora_r) == ("custom", 20, 8)


def test_a_facts_run_trains_every_pair_and_never_its_rewordings(tmp_path, monkeypatch):
    from tunewiz.training.launch import prepare_run

    monkeypatch.setattr("tunewiz.training.launch._cached_base_dir", lambda project: None)
    project = create_project(tmp_path / "p", {"dataset.validation_fraction": 0.3})
    pairs = PairStore(project.pairs_path).add([Pair(q, a) for q, a in FACTS])
    store = RewordingStore(project.path(REWORDINGS_FILE))
    store.add([__import__("tunewiz.evalsets", fromlist=["Rewording"]).Rewording(
        pair_id=pairs[0].id, question="Which code word was given to project Zebra?", made_from=pairs[0].question,
        source="file")])
    run = prepare_run(project, gpus=1)
    config = run.read_spec().to_dict()
    assert config["kind"] == "facts" and config["validation_ids"] == []
    assert "validation_fraction is not used for facts" in config["plan"]["kind_reason"]
    records = [json.loads(line) for line in (run.dir / "dataset.jsonl").read_text().splitlines()]
    train = {r["question"] for r in records if r["split"] == "train"}
    reworded = [r for r in records if r["split"] == "reworded"]
    assert train == {q for q, _ in FACTS}  # every pair trains
    assert len(reworded) == 4 and not {r["question"] for r in reworded} & train
    assert {"question": "Which code word was given to project Zebra?", "source": "file"}.items() <= next(
        r for r in reworded if r["pair_id"] == pairs[0].id).items()
    assert sum(r["split"] == "general" for r in records) == 8
    assert config["evaluation"]["reworded_sources"] == {"file": 1, "rules": 3}  # for `tunewiz checkpoints`


@pytest.mark.parametrize("kind", ["skill"])
def test_a_skill_run_holds_pairs_out(tmp_path, monkeypatch, kind):
    from tunewiz.training.launch import prepare_run

    monkeypatch.setattr("tunewiz.training.launch._cached_base_dir", lambda project: None)
    project = create_project(tmp_path / "p", {"dataset.validation_fraction": 0.3, "dataset.kind": kind})
    PairStore(project.pairs_path).add(_pairs(20))
    config = prepare_run(project, gpus=1).read_spec().to_dict()
    assert config["kind"] == "skill" and config["validation_ids"]
