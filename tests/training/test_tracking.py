"""[tracking]: the engine's metrics also go to TensorBoard, W&B (offline) or MLflow (a local file store),
read back with each tool's own reader; a resume continues the same tracker run with no step twice."""

from __future__ import annotations

import os
import signal
import time

import pytest
from tracking_helpers import mlflow_history, tensorboard_scalars, wandb_history

from tunewiz.errors import TunewizError
from tunewiz.training.launch import start_run, wait_for_end
from tunewiz.training.tracking import MlflowTracker, read_tracking, scalars, tracking_hints

pytestmark = pytest.mark.slow


def kill_then_resume(project):
    """Train, kill -9 after two checkpoints (steps past the last one are logged, then dropped), resume."""
    project.set("hyperparameters.max_steps", 120)
    project.set("hyperparameters.save_steps", 10)
    project.save()
    run = start_run(project)
    deadline = time.monotonic() + 180
    while len(run.complete_checkpoints()) < 2 or run.read_status().step < 25:
        assert time.monotonic() < deadline and run.state() in ("starting", "running"), run.log_path.read_text()
        time.sleep(0.05)
    os.kill(run.read_status().pid, signal.SIGKILL)
    while run.state() != "died":
        time.sleep(0.05)
    start_run(project, resume=run.id)
    assert wait_for_end(run, 180) == "finished", run.log_path.read_text()
    return run


def train_losses(run):
    return [(m["step"], m["loss"]) for m in run.metrics() if m["type"] == "train"]


@pytest.mark.parametrize("backend", ["tensorboard", "mlflow", "wandb"])
def test_a_resumed_run_is_one_tracker_run_with_each_step_once(tiny_project, backend, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow-skinny has no SQL store
    tiny_project.set("tracking.backend", backend)
    run = kill_then_resume(tiny_project)
    losses = train_losses(run)
    assert [s for s, _ in losses] == list(range(1, 121))
    info = read_tracking(run.dir)
    assert info["backend"] == backend and info["project"] == "proj"

    if backend == "tensorboard":
        logged = tensorboard_scalars(run.dir / "tensorboard", "train/loss")
        assert [s for s, _ in logged] == list(range(1, 121))  # purged past the checkpoint, then logged again
        assert [v for _, v in logged] == pytest.approx([v for _, v in losses], rel=1e-5)
        recall = tensorboard_scalars(run.dir / "tensorboard", "eval/val_loss")
        assert [s for s, _ in recall] == [m["step"] for m in run.metrics() if m["type"] == "eval"]
    elif backend == "mlflow":
        logged = mlflow_history(os.environ["MLFLOW_TRACKING_URI"], info["run_id"], "train_loss")
        steps = [s for s, _ in logged]
        assert steps == list(range(1, 121))  # no step twice: the killed run's steps are not sent again
        kept = dict(losses)  # up to the checkpoint resumed from (20 or later) the values are the same
        assert all(kept[s] == pytest.approx(v, rel=1e-6) for s, v in logged if s <= 20)
    else:
        files = sorted(run.dir.glob(f"wandb/offline-run-*-{run.id}/run-{run.id}.wandb"))
        assert len(files) == 2  # the first process and the resume, one W&B run id (`wandb sync` joins them)
        resumed_from = int(run.log_path.read_text().split("resuming from checkpoint-")[1].split()[0])
        # kill -9 may cost W&B's offline writer what it had not flushed; the resume sends from the checkpoint
        first, second = ([s for s, _ in wandb_history(f, "train/loss")] for f in files)
        assert first == list(range(1, len(first) + 1))
        assert second == list(range(resumed_from + 1, 121))
    hints = " ".join(tracking_hints(run.dir))
    assert {"tensorboard": "ssh -L 6006:localhost:6006", "mlflow": "mlflow ui", "wandb": "wandb sync"}[backend] in hints


def test_a_resumed_mlflow_run_gets_the_steps_mlflow_lacks_even_those_metrics_jsonl_has(tmp_path, monkeypatch):
    # kill -9 between the metrics.jsonl line and MLflow's write: MLflow, not the file, says what it has
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    first = MlflowTracker("r1", "proj", {"lr": 1}, "")
    for step in range(1, 31):
        first.log({"type": "train", "step": step, "loss": 1.0})
    first.close()
    resumed = MlflowTracker("r1", "proj", {"lr": 1}, first.run_id)
    assert resumed.sent_through == 30
    for step in range(21, 41):  # from checkpoint-20 again
        resumed.log({"type": "train", "step": step, "loss": 0.5})
    resumed.close()
    logged = mlflow_history(uri, first.run_id, "train_loss")
    assert [s for s, _ in logged] == list(range(1, 41))
    assert {v for s, v in logged if s > 30} == {0.5}


def test_a_missing_tracker_or_key_is_said_before_the_run_starts(tiny_project, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    tiny_project.set("tracking.backend", "mlflow")
    with pytest.raises(TunewizError, match=r"needs the mlflow package.*tunewiz\[tracking\]"):
        start_run(tiny_project)
    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tiny_project.root / "no-netrc"))
    tiny_project.set("tracking.backend", "wandb")
    with pytest.raises(TunewizError, match="WANDB_API_KEY.*wandb login.*WANDB_MODE=offline"):
        start_run(tiny_project)
    assert not tiny_project.runs_dir.exists() or not any(tiny_project.runs_dir.iterdir())


def test_records_become_named_scalars():
    assert scalars({"type": "train", "step": 3, "loss": 1.5, "lr": 0.001, "grad_norm": 2.0, "time": 9.0}) == {
        "train/loss": 1.5, "train/lr": 0.001, "train/grad_norm": 2.0}
    assert scalars({"type": "recall", "step": 10, "trained": {"recalled": 3, "total": 4},
                    "reworded": {"recalled": 1, "total": 4}, "general": {"broken": 0, "total": 8},
                    "seconds": 2.5}) == {"recall/trained": 0.75, "recall/reworded": 0.25,
                                         "recall/everyday_broken": 0.0, "recall/seconds": 2.5}


def test_tunewiz_train_says_where_the_tracked_metrics_are(tiny_project, capsys):
    from tunewiz.cli import main

    tiny_project.set("tracking.backend", "tensorboard")
    tiny_project.set("hyperparameters.max_steps", 4)
    tiny_project.save()
    assert main(["train", "-p", str(tiny_project.root)]) == 0
    out = capsys.readouterr().out
    assert "Metrics also go to tensorboard" in out
    run_dir = sorted(p for p in tiny_project.runs_dir.iterdir() if p.is_dir())[-1]
    assert f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'} --port 6006" in out
