"""Experiment trackers: the engine's metrics records, also sent to TensorBoard, W&B or MLflow.

metrics.jsonl stays the record (the wizard, `tunewiz checkpoints` and the pick read it);
a tracker gets a copy of each record as the engine writes it, as scalars named
`train/loss`, `eval/val_loss`, `recall/reworded`, ... at the record's step.

Resume continues the same tracker run (TensorBoard: the same folder; W&B: the run id;
MLflow: the run id kept in `tracking.json`) without a step twice: TensorBoard drops
its events past the resumed checkpoint (purge_step) and gets those steps again; W&B
gets them again and keeps only steps past the last one it has (its rule: steps only
increase); MLflow would keep both, so it is sent only steps past the last one it has
(asked of MLflow itself: kill -9 can fall between metrics.jsonl and the tracker).

Keys and servers come from each tool's own environment variables (WANDB_API_KEY,
WANDB_MODE, MLFLOW_TRACKING_URI, ...): tunewiz never stores them.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from tunewiz.errors import TunewizError

BACKENDS = ("none", "tensorboard", "wandb", "mlflow")
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
TRACKING_FILE = "tracking.json"
"""In the run folder: the backend, its run id (MLflow, W&B) and where to look."""
TENSORBOARD_DIR = "tensorboard"


def check_tracking(backend: str) -> None:
    """Before a run starts: the backend is known, its package installed, W&B able to log unattended."""
    if backend not in BACKENDS:
        raise TunewizError(f"tracking.backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "none":
        return
    if importlib.util.find_spec(PACKAGES[backend]) is None:
        raise TunewizError(f"tracking.backend = {backend!r} needs the {PACKAGES[backend]} package, which is not "
                           "installed: pip install 'tunewiz[tracking]' (or set tracking.backend = none)")
    if backend == "wandb" and not _wandb_can_log():
        raise TunewizError("tracking.backend = 'wandb': the run is detached and cannot ask for a key; set "
                           "WANDB_API_KEY, run `wandb login` once, or set WANDB_MODE=offline (then `wandb sync`)")


def _wandb_can_log() -> bool:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8")
    except OSError:
        return False


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record as tracker scalars."""
    kind = record.get("type")
    out: dict[str, float] = {}
    if kind == "train":
        for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mem_mb", "epoch"):
            if isinstance(record.get(key), (int, float)):
                out[f"train/{key}"] = float(record[key])
    elif kind == "eval" and isinstance(record.get("val_loss"), (int, float)):
        out["eval/val_loss"] = float(record["val_loss"])
    elif kind == "recall":
        for name in ("trained", "reworded"):
            part = record.get(name)
            if isinstance(part, dict) and part.get("total"):
                out[f"recall/{name}"] = part["recalled"] / part["total"]
        general = record.get("general")
        if isinstance(general, dict) and general.get("total"):
            out["recall/everyday_broken"] = general["broken"] / general["total"]
        if isinstance(record.get("seconds"), (int, float)):
            out["recall/seconds"] = float(record["seconds"])
    return out


class Tracker:
    """Sends records past `sent_through` (steps the tracker already has) to `_send`."""

    def __init__(self, sent_through: int) -> None:
        self.sent_through = sent_through

    def log(self, record: dict[str, Any]) -> None:
        step = record.get("step")
        values = scalars(record)
        if not values or not isinstance(step, int) or step <= self.sent_through:
            return
        self._send(values, step)

    def _send(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    def __init__(self, run_dir: Path, resume_step: int) -> None:
        super().__init__(resume_step)  # purge_step removes what followed the resumed step: send it again
        from torch.utils.tensorboard import SummaryWriter  # heavy: only in the engine

        self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR),
                                    purge_step=resume_step + 1 if resume_step else None)

    def _send(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()  # a detached run is read while it trains

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    def __init__(self, run_dir: Path, run_id: str, project: str, config: dict, resume_step: int) -> None:
        super().__init__(resume_step)  # W&B drops steps at or below its last one
        import wandb  # heavy: only in the engine

        self.wandb = wandb
        self.run = wandb.init(project=project, id=run_id, name=run_id, resume="allow", dir=str(run_dir),
                              config=config)

    def _send(self, values: dict[str, float], step: int) -> None:
        self.wandb.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker(Tracker):
    def __init__(self, run_id: str, project: str, config: dict, mlflow_run_id: str) -> None:
        super().__init__(0)
        import mlflow  # heavy: only in the engine

        self.mlflow = mlflow
        mlflow.set_experiment(project)
        self.active = mlflow.start_run(run_id=mlflow_run_id or None, run_name=None if mlflow_run_id else run_id)
        if not mlflow_run_id:
            mlflow.log_params({k: str(v)[:250] for k, v in _flat(config).items()})
        self.run_id = self.active.info.run_id
        self.sent_through = self._last_step() if mlflow_run_id else 0

    def _last_step(self) -> int:
        """The last step MLflow has for this run, over all its metrics."""
        client = self.mlflow.tracking.MlflowClient()
        names = client.get_run(self.run_id).data.metrics
        return max((m.step for name in names for m in client.get_metric_history(self.run_id, name)), default=0)

    def _send(self, values: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


def _flat(config: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def open_tracker(run_dir: Path, run_id: str, tracking: dict[str, str], config: dict,
                 resume_step: int) -> Tracker | None:
    """The run's tracker (None for 'none'); `resume_step`: the checkpoint's step a resume starts from."""
    backend = tracking.get("backend", "none")
    if backend == "none":
        return None
    check_tracking(backend)
    project = tracking.get("project") or "tunewiz"
    saved = read_tracking(run_dir)
    info: dict[str, Any] = {"backend": backend, "project": project}
    if backend == "tensorboard":
        tracker: Tracker = TensorBoardTracker(run_dir, resume_step)
        info["logdir"] = str(run_dir / TENSORBOARD_DIR)
    elif backend == "wandb":
        tracker = WandbTracker(run_dir, run_id, project, config, resume_step)
        info["url"] = "" if tracker.run.offline else (tracker.run.url or "")
        info["dir"] = str(tracker.run.dir or "")
    else:
        tracker = MlflowTracker(run_id, project, config, saved.get("run_id", ""))
        info["run_id"] = tracker.run_id
        info["tracking_uri"] = tracker.mlflow.get_tracking_uri()
    (run_dir / TRACKING_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return tracker


def read_tracking(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / TRACKING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def tracking_hints(run_dir: Path) -> list[str]:
    """Where to look at a run's tracked metrics (for `tunewiz runs`)."""
    import getpass
    import shlex
    import socket

    info = read_tracking(run_dir)
    backend = info.get("backend")
    if backend == "tensorboard":
        logdir = shlex.quote(info.get("logdir") or str(run_dir / TENSORBOARD_DIR))
        return [f"TensorBoard: tensorboard --logdir {logdir} --port 6006, then http://localhost:6006",
                f"  from a laptop: ssh -L 6006:localhost:6006 {getpass.getuser()}@{socket.gethostname()} "
                "(keep it open), then http://localhost:6006"]
    if backend == "wandb":
        if info.get("url"):
            return [f"Weights & Biases: {info['url']}"]
        return [f"Weights & Biases (offline): wandb sync {shlex.quote(str(run_dir / 'wandb'))}/offline-run-* "
                "uploads it"]
    if backend == "mlflow":
        uri = info.get("tracking_uri", "")
        ui = (f"mlflow ui --backend-store-uri {shlex.quote(uri)} --port 5000, then http://localhost:5000"
              if uri.startswith("file:") else uri)
        return [f"MLflow run {info.get('run_id', '')} in experiment {info.get('project', '')}: {ui}"]
    return []
