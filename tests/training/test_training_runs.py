"""Runs of the real engine on a tiny real model: the run folder contract and the faults."""

from __future__ import annotations

import errno
import json
import os
import pty
import signal
import subprocess
import sys
import time

import pytest

from tunewiz.runs import COMPLETE_MARKER
from tunewiz.training.launch import start_run, stop_run, wait_for_end


def wait_until(predicate, timeout=120.0, poll=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    raise AssertionError("timed out waiting")


def train_steps(run):
    return [m["step"] for m in run.metrics() if m["type"] == "train"]


def test_a_run_writes_the_contract_files(tiny_project):
    run = start_run(tiny_project)
    assert wait_for_end(run, 180) == "finished", run.log_path.read_text()
    status = run.read_status()
    assert (status.step, status.max_steps) == (30, 30) and status.ended

    config = run.read_spec().to_dict()
    assert config["template"]["family"] == "chatml" and os.path.isdir(config["base_dir"])
    assert len(config["train_ids"]) + len(config["validation_ids"]) == 12 and config["validation_ids"]
    assert config["lora"]["target_modules"] == ["all-linear"]

    train = [m for m in run.metrics() if m["type"] == "train"]
    assert [m["step"] for m in train] == list(range(1, 31))
    for key in ("epoch", "loss", "lr", "grad_norm", "tokens_per_s", "mem_mb", "time"):
        assert key in train[0]
    evals = [m for m in run.metrics() if m["type"] == "eval"]
    assert [m["step"] for m in evals] == [5, 10, 15, 20, 25, 30] and evals[0]["val_loss"] > 0
    assert train[-1]["loss"] < train[0]["loss"]

    checkpoints = run.complete_checkpoints()
    assert [c.name for c in checkpoints] == [f"checkpoint-{s}" for s in (5, 10, 15, 20, 25, 30)]
    files = set(os.listdir(checkpoints[-1]))
    assert {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt",
            "rng_state.pt", "trainer_state.json", COMPLETE_MARKER} <= files
    assert json.loads((checkpoints[-1] / "trainer_state.json").read_text())["val_loss"] == evals[-1]["val_loss"]


@pytest.mark.slow
def test_resume_after_kill_9_continues_the_step_numbering(tiny_project):
    tiny_project.set("hyperparameters.max_steps", 60)
    run = start_run(tiny_project)
    wait_until(lambda: len(run.complete_checkpoints()) >= 2)
    os.kill(run.read_status().pid, signal.SIGKILL)
    wait_until(lambda: run.state() == "died", timeout=10)
    last_complete = int(run.complete_checkpoints()[-1].name.split("-")[1])
    assert last_complete < 60

    start_run(tiny_project, resume=run.id)
    assert wait_for_end(run, 180) == "finished", run.log_path.read_text()
    assert train_steps(run) == list(range(1, 61))  # each step once, numbering unbroken
    assert run.read_status().step == 60
    assert f"resuming from checkpoint-{last_complete}" in run.log_path.read_text()


def test_stop_saves_a_checkpoint_then_resume_finishes(tiny_project):
    tiny_project.set("hyperparameters.max_steps", 400)
    tiny_project.set("hyperparameters.save_steps", 1000)
    run = start_run(tiny_project)
    wait_until(lambda: run.read_status().step >= 3)
    stop_run(run)
    assert wait_for_end(run, 60) == "stopped"
    stopped_at = run.read_status().step
    assert stopped_at < 400
    assert run.complete_checkpoints()[-1].name == f"checkpoint-{stopped_at}"
    assert "--resume" in run.read_status().message


@pytest.mark.slow
def test_closing_the_terminal_does_not_stop_the_run(tiny_project):
    """`tunewiz train` in the foreground of a terminal; the terminal goes away (SIGHUP)."""
    tiny_project.set("hyperparameters.max_steps", 80)
    tiny_project.save()
    pid, master = pty.fork()
    if pid == 0:  # the child: a shell-like session whose controlling terminal is the pty
        os.execv(sys.executable, [sys.executable, "-m", "tunewiz", "train", "-p", str(tiny_project.root)])
    from tunewiz.runs import list_runs

    wait_until(lambda: list_runs(tiny_project.runs_dir) and list_runs(tiny_project.runs_dir)[-1].read_status().step >= 2)
    run = list_runs(tiny_project.runs_dir)[-1]
    os.close(master)  # the terminal closes: the kernel hangs up the session
    os.kill(pid, signal.SIGHUP)
    os.waitpid(pid, 0)
    step = run.read_status().step
    assert run.is_alive()
    assert wait_for_end(run, 180) == "finished"
    assert run.read_status().step == 80 > step


def test_nan_loss_stops_the_run_with_a_message(tmp_path, smollm2_tokenizer, make_project, tiny_model_builder):
    model = tiny_model_builder(tmp_path / "poisoned", smollm2_tokenizer, poison=True)
    project = make_project(tmp_path / "proj", str(model), [("What is x?", "x is 1.")] * 6,
                           **{"hyperparameters.max_steps": 10})
    run = start_run(project)
    assert wait_for_end(run, 120) == "failed"
    message = run.read_status().message
    assert "nan" in message and "step 1" in message and "learning_rate" in message
    assert not run.complete_checkpoints()


def test_a_full_disk_fails_clearly_and_keeps_earlier_checkpoints(tiny_project, monkeypatch):
    """ENOSPC cannot be made on demand here (no tmpfs to fill), so torch.save raises it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, get_scheduler

    from tunewiz.runs import Run
    from tunewiz.training.checkpoints import DiskFullError, save_checkpoint

    run = Run(tiny_project.runs_dir / "r")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_project.config.base_model.model),
                           LoraConfig(r=4, target_modules="all-linear"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    scheduler = get_scheduler("constant", optimizer)
    save_checkpoint(run, 5, model, optimizer, scheduler, {"step": 5})

    real_save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        if str(path).endswith("scheduler.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskFullError, match="disk is full.*earlier checkpoints are intact"):
        save_checkpoint(run, 10, model, optimizer, scheduler, {"step": 10})
    assert [c.name for c in run.complete_checkpoints()] == ["checkpoint-5"]
    assert sorted(os.listdir(run.checkpoints_dir)) == ["checkpoint-5"]  # no half-written folder left


@pytest.mark.slow
def test_two_cpu_processes_write_metrics_and_checkpoints_once(tiny_project):
    """The multi-process path (torchrun, gloo): rank 0 alone writes."""
    tiny_project.set("hyperparameters.max_steps", 10)
    run = start_run(tiny_project, gpus=2)
    assert wait_for_end(run, 240) == "finished", run.log_path.read_text()
    assert train_steps(run) == list(range(1, 11))
    assert [c.name for c in run.complete_checkpoints()] == ["checkpoint-5", "checkpoint-10"]
    assert run.read_status().extra["world_size"] == 2
    assert run.read_spec().to_dict()["hardware"]["gpus"] == 2


def test_the_memory_estimate_refuses_what_cannot_fit(make_project, tmp_path):
    from tunewiz.errors import TunewizError
    from tunewiz.hardware import check_fits, detect

    project = make_project(tmp_path / "big", "smollm2-135m", [("q", "a")],
                           **{"hyperparameters.batch_size": 4096, "template.max_seq_len": 131072})
    with pytest.raises(TunewizError, match="(?s)will not fit.*--allow-over-memory"):
        start_run(project)
    assert not project.runs_dir.exists()  # refused before anything was written
    assert check_fits(project, allow=True).total_mb > detect().ram_available_mb
    result = subprocess.run([sys.executable, "-m", "tunewiz", "train", "-p", str(project.root)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "will not fit" in result.stderr


def test_the_memory_estimate_is_for_the_values_the_plan_trains_with(make_project, tmp_path):
    """Under preset = auto, 40 facts train at LoRA rank 64 (the project says 16): the refusal's
    estimate is the rank-64 one."""
    from tunewiz.errors import TunewizError
    from tunewiz.hardware import check_fits
    from tunewiz.training.launch import plan_run

    facts = [(f"What is the code of item {i}?", f"The code of item {i} is {i * 37 % 101}.") for i in range(40)]
    project = make_project(tmp_path / "facts", "smollm2-135m", facts, **{
        "template.max_seq_len": 131072, "hyperparameters.preset": "auto", "dataset.kind": "auto"})
    planned = plan_run(project, 1)[2].hyperparameters
    assert (project.config.hyperparameters.lora_r, planned["lora_r"]) == (16, 64)
    at_rank = {r: check_fits(project, allow=True, hyperparameters=dict(planned, lora_r=r, lora_alpha=2 * r))
               for r in (16, 64)}
    assert at_rank[64].lora_mb > at_rank[16].lora_mb
    with pytest.raises(TunewizError, match="will not fit") as refused:
        start_run(project)
    assert f"LoRA + Adam    {at_rank[64].lora_mb:10,.0f} MB" in str(refused.value)
    assert not project.runs_dir.exists()


def test_tunewiz_hardware_estimates_the_next_run(make_project, tmp_path, capsys):
    from tunewiz.cli import main
    from tunewiz.hardware import check_fits
    from tunewiz.project import Project

    facts = [(f"What is the code of item {i}?", f"The code of item {i} is {i * 37 % 101}.") for i in range(40)]
    project = make_project(tmp_path / "facts", "smollm2-135m", facts,
                           **{"hyperparameters.preset": "auto", "dataset.kind": "auto"})
    assert main(["hardware", "-p", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "Estimate for the next run (batch 4, LoRA rank 64, max_seq_len" in out
    assert "batch size 4 (up to 8 fits)" in out  # the plan's batch, not the largest that fits
    rank_64 = check_fits(project, allow=True, hyperparameters={"lora_r": 64})
    assert f"LoRA + Adam    {rank_64.lora_mb:10,.0f} MB" in out
    assert main(["hardware", "-p", str(project.root), "--apply"]) == 0
    assert "The batch size stays the plan's" in capsys.readouterr().out
    from tunewiz.training.launch import plan_run

    reopened = Project.load(project.root)
    assert reopened.config.hyperparameters.batch_size == 4  # the schema default: still the plan's to choose
    assert plan_run(reopened, 1)[2].hyperparameters["batch_size"] == 4
    empty = make_project(tmp_path / "empty", "smollm2-135m", [])
    assert main(["hardware", "-p", str(empty.root)]) == 0
    assert "Estimate for the project's settings (batch 4," in capsys.readouterr().out


def test_train_plan_says_what_the_run_would_train_with_and_starts_nothing(make_project, tmp_path, capsys):
    from tunewiz.cli import main

    facts = [(f"What is the code of item {i}?", f"The code of item {i} is {i * 37 % 101}.") for i in range(40)]
    project = make_project(tmp_path / "facts", "smollm2-135m", facts,
                           **{"hyperparameters.preset": "auto", "dataset.kind": "auto"})
    assert main(["train", "-p", str(project.root), "--plan"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The next run would train with:\ndata: facts") and "lora_r = 64" in out
    assert not project.runs_dir.exists()


def test_hardware_apply_lowers_only_a_planned_batch_that_does_not_fit(make_project, tmp_path):
    from tunewiz.hardware import Hardware, apply_recommendation, hardware_report
    from tunewiz.project import Project

    project = make_project(tmp_path / "p", "smollm2-135m", [("What is 2+2?", "4.")])
    project.set("template.max_seq_len", 2048)
    project.set("hyperparameters.batch_size", 16)
    small = Hardware(cpu_cores=2, ram_total_mb=4_000, ram_available_mb=2_500)  # a small laptop
    lines, rec = hardware_report(project, small)
    assert rec.planned_batch_size == 16 and rec.batch_size == rec.max_batch_size < 16
    assert f"batch size {rec.batch_size} (the planned 16 does not fit)" in "\n".join(lines)
    assert "hyperparameters.batch_size" in apply_recommendation(project, rec)
    assert Project.load(project.root).config.hyperparameters.batch_size == rec.batch_size


def test_a_planned_batch_above_the_proposed_ones_that_fits_stays(make_project, tmp_path):
    # The search proposes at most 8 on a CPU and 64 on a GPU; a larger batch the user chose and the
    # machine holds is not "a batch that does not fit", and --apply must not lower it.
    from tunewiz.hardware import GPU, Hardware, apply_recommendation, hardware_report

    project = make_project(tmp_path / "p", "smollm2-135m", [("What is 2+2?", "4.")])
    roomy_cpu = Hardware(cpu_cores=2, ram_total_mb=512_000, ram_available_mb=500_000)
    h200 = Hardware(cpu_cores=16, ram_total_mb=128_000, ram_available_mb=120_000,
                    gpus=[GPU(0, "NVIDIA H200", 143_000, 140_000, 9.0)])
    for hardware, batch in ((roomy_cpu, 16), (h200, 128)):
        project.set("hyperparameters.batch_size", batch)
        lines, rec = hardware_report(project, hardware)
        assert (rec.batch_size, rec.lowers_batch) == (batch, False), "\n".join(lines)
        assert "does not fit" not in "\n".join(lines)
        assert "hyperparameters.batch_size" not in apply_recommendation(project, rec)
    project.set("hyperparameters.batch_size", 4)
    assert hardware_report(project, roomy_cpu)[1].max_batch_size == 8  # what is proposed stays at 8


def test_a_gpu_the_machine_does_not_have_is_refused_before_anything_starts(make_project, tmp_path, monkeypatch):
    from tunewiz import hardware
    from tunewiz.errors import TunewizError
    from tunewiz.training.launch import next_run_plan

    project = make_project(tmp_path / "p", "smollm2-135m", [("What is 2+2?", "4.")])
    monkeypatch.setattr(hardware, "detect", lambda: hardware.Hardware(cpu_cores=2, ram_total_mb=16_000,
                                                                      ram_available_mb=12_000))
    project.set("hardware.device", "cuda")
    with pytest.raises(TunewizError, match="hardware.device = cuda, but this machine has no NVIDIA GPU"):
        next_run_plan(project)
    with pytest.raises(TunewizError, match="hardware.device = cuda"):
        start_run(project)
    assert not project.runs_dir.exists()


def test_the_plan_says_which_lines_of_the_pairs_journal_it_could_not_read(make_project, tmp_path):
    # a pair the user made that does not train, unsaid, is a pair lost
    from tunewiz.training.launch import next_run_plan

    project = make_project(tmp_path / "p", "smollm2-135m", [("What is 2+2?", "4."), ("What is 3+3?", "6.")])
    lines = project.pairs_path.read_text().splitlines()
    project.pairs_path.write_text(lines[0] + "\n" + lines[1].replace('"answer"', '"answer" TORN') + "\n")
    plan = next_run_plan(project)
    assert plan.train_pairs == 1
    assert any("skipped 1 unreadable line (line 2); fix or remove it" in line for line in plan.lines())
    assert "note: " in plan.summary()


def test_one_run_per_project_unless_parallel(tiny_project):
    from tunewiz.errors import TunewizError

    tiny_project.set("hyperparameters.max_steps", 400)
    tiny_project.set("hyperparameters.save_steps", 1000)
    first = start_run(tiny_project)
    try:
        wait_until(lambda: first.is_alive())
        with pytest.raises(TunewizError, match=f"run {first.id} of this project is still running.*--parallel"):
            start_run(tiny_project)
        with pytest.raises(TunewizError, match="still running"):
            start_run(tiny_project, resume=True)
        second = start_run(tiny_project, parallel=True)
        wait_until(lambda: second.is_alive())
        stop_run(second)
        assert wait_for_end(second, 60) == "stopped"
    finally:
        if first.is_alive():
            stop_run(first)
        wait_for_end(first, 60)


def test_resume_passes_over_a_damaged_checkpoint_to_the_newest_intact_one(tiny_project):
    tiny_project.set("hyperparameters.max_steps", 10)
    run = start_run(tiny_project)
    assert wait_for_end(run, 120) == "finished", run.log_path.read_text()
    damaged = run.checkpoints_dir / "checkpoint-10" / "optimizer.pt"
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated, as a full disk or a bad copy leaves it
    older = run.checkpoints_dir / "checkpoint-5" / COMPLETE_MARKER  # as written before checksums existed
    marker = json.loads(older.read_text())
    assert set(marker["files"]) >= {"adapter_model.safetensors", "optimizer.pt"}
    del marker["files"]
    older.write_text(json.dumps(marker))
    # Pretend the run stopped at 10 of 15 steps, so resume has work to do.
    status = run.read_status()
    status.state, status.max_steps = "stopped", 15
    run.write_status(status)
    config = run.read_spec().to_dict()
    config["hyperparameters"]["max_steps"] = 15
    run.config_path.write_text(json.dumps(config))
    start_run(tiny_project, resume=run.id)
    assert wait_for_end(run, 120) == "finished", run.log_path.read_text()
    log = run.log_path.read_text()
    assert f"passed over a damaged checkpoint: {damaged} is damaged" in log
    assert "resuming from checkpoint-5" in log
    assert train_steps(run) == list(range(1, 16))


@pytest.mark.slow
def test_a_loss_that_blows_up_stops_the_run(tmp_path, make_project, code_pairs):
    """SmolLM2 (a tiny random model's loss cannot rise above chance): at learning rate 1.0 the
    loss goes from about 1.7 to above 20 at step 2 and stays high."""
    project = make_project(tmp_path / "proj", "smollm2-135m", code_pairs(8), **{
        "hyperparameters.learning_rate": 1.0, "hyperparameters.max_grad_norm": 0.0,
        "hyperparameters.max_steps": 14, "hyperparameters.save_steps": 100, "hyperparameters.batch_size": 4,
        "hyperparameters.warmup_ratio": 0.0, "hyperparameters.lr_scheduler": "constant",
        "evaluation.questions": 0, "evaluation.general_prompts": False, "hardware.threads": 2})
    run = start_run(project)
    assert wait_for_end(run, 300) == "failed", run.log_path.read_text()
    message = run.read_status().message
    assert "the loss blew up" in message and "learning_rate (now 1)" in message
    assert max(train_steps(run)) < 14


def test_a_real_full_disk_during_a_checkpoint(tiny_model, make_project, small_disk, fill, code_pairs):
    """The run folder on a small file system that fills up at the second checkpoint (~250 kB each)."""
    disk = small_disk(2048)
    project = make_project(disk / "proj", str(tiny_model), code_pairs(12), **{
        "hyperparameters.max_steps": 30, "hyperparameters.save_steps": 5, "hardware.threads": 1})
    fill(disk, leave=400 * 1024)
    run = start_run(project)
    assert wait_for_end(run, 120) == "failed", run.log_path.read_text()
    message = run.read_status().message
    assert "the disk is full: checkpoint-" in message and "earlier checkpoints are intact" in message
    assert [c.name for c in run.complete_checkpoints()] == ["checkpoint-5"]
    assert not [p for p in run.checkpoints_dir.iterdir() if p.name.startswith(".tmp-")]


def test_a_conversation_trains_whole(tiny_project):
    """A 3-turn sample goes into the run's dataset with its turns, and the engine trains on it."""
    from tunewiz.dataset import Pair, PairStore

    history = [{"role": "user", "content": "I want to cook."}, {"role": "assistant", "content": "What do you have?"},
               {"role": "user", "content": "Chicken and rice."}, {"role": "assistant", "content": "A stir-fry."}]
    PairStore(tiny_project.pairs_path).add([Pair(id="conv-0", question="How long?", answer="25 minutes.",
                                                 history=history)])
    tiny_project.set("dataset.validation_fraction", 0.0)
    tiny_project.set("hyperparameters.max_steps", 5)
    run = start_run(tiny_project)
    assert wait_for_end(run, 120) == "finished", run.log_path.read_text()
    records = [json.loads(line) for line in (run.dir / "dataset.jsonl").read_text().splitlines()]
    conversation = next(r for r in records if r.get("id") == "conv-0")
    assert conversation["split"] == "train" and conversation["history"] == history
    assert not any(r.get("id") == "conv-0" for r in records if r["split"] == "recall")


def test_a_run_with_question_dropout_trains_and_says_so(tiny_project):
    tiny_project.set("hyperparameters.question_dropout", 0.3)
    tiny_project.set("hyperparameters.max_steps", 4)
    run = start_run(tiny_project)
    assert wait_for_end(run, 120) == "finished", run.log_path.read_text()
    assert run.read_spec().hyperparameters["question_dropout"] == 0.3
    assert "question dropout 0.3: each pass leaves out about 30% of a question's" in run.log_path.read_text()
