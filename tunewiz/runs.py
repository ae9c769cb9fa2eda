"""Run folders: `runs/<run-id>/` with status.json, metrics.jsonl, train.log and checkpoints/.

This module only reads and writes the files; starting and stopping the training
process lives in `tunewiz.training`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tunewiz.errors import TunewizError
from tunewiz.project import atomic_write_text

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
RUN_CONFIG_FILE = "run.json"
"""The run's configuration snapshot (base model, base_dir, template, data split, LoRA, hyperparameters)."""
DATA_FILE = "dataset.jsonl"
"""The samples the run trains and checks on (written by launch, read by the engine)."""
STOP_FILE = "STOP"
"""Created to ask a running engine to save a checkpoint and stop."""
CHECKPOINTS_DIR = "checkpoints"
COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_NAME = re.compile(r"checkpoint-\d+")
"""Written last into a checkpoint folder; a checkpoint without it is ignored. It holds the trainer
state and, under "files", the size and SHA-256 of every other file (checkpoints written before
checksums existed have none; they are checked for structure only)."""

ACTIVE_STATES = ("starting", "running", "stopping")
REMOTE_HEARTBEAT_S = 900
"""A run on another machine counts as alive while its status.json is younger than this (a step, a
checkpoint or compiling the model can take minutes between two writes)."""


RUN_SPEC_VERSION = 2
"""1: run.json before it had a version (read the same way); 2: this RunSpec."""


@dataclass
class RunSpec:
    """run.json: what a run trains, written once by `tunewiz.training.launch` and completed by the
    engine (the converted base folder, the resolved template family). Every reader goes through
    `Run.read_spec`, the one place that opens the file."""

    run_id: str = ""
    created: str = ""
    project_dir: str = ""
    base_model: dict[str, str] = field(default_factory=lambda: {"model": "", "gguf_file": ""})
    """The base model as the project named it, and the GGUF file inside it if any."""
    base_dir: str = ""
    """The plain Hugging Face folder trained from ('' until the engine has converted a GGUF base)."""
    template: dict[str, Any] = field(default_factory=lambda: {"name": "auto", "family": None})
    """The template setting and the family it resolved to (None until the engine resolves 'auto')."""
    system_prompt: str = ""
    max_seq_len: int = 512
    kind: str = "skill"
    """'facts' or 'skill': how checkpoints are judged (runs before kinds existed: skill)."""
    train_ids: list[str] = field(default_factory=list)
    validation_ids: list[str] = field(default_factory=list)
    lora: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    """The recommendation the run was started with (tunewiz.recommend.TrainingPlan.to_dict)."""
    tracking: dict[str, str] = field(default_factory=lambda: {"backend": "none", "project": ""})
    """[tracking]: where the engine also logs metrics (tunewiz.training.tracking)."""
    version: int = RUN_SPEC_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know (e.g. the benchmarks' random_weights): kept when rewritten."""

    @property
    def family(self) -> str | None:
        return self.template.get("family")

    @property
    def base_path(self) -> Path:
        return Path(self.base_dir)

    @property
    def model_name(self) -> str:
        return self.base_model.get("model", "")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> "RunSpec":
        if not isinstance(data, dict):
            raise TunewizError(f"{source}: expected a JSON object")
        data = dict(data)
        version = data.pop("version", 1)
        if not isinstance(version, int) or version > RUN_SPEC_VERSION:
            raise TunewizError(f"{source}: run.json version {version!r} is newer than this tunewiz understands")
        if "template_family" in data:  # the oldest runs kept the family at the top level
            data.setdefault("template", {})["family"] = data.pop("template_family")
        if isinstance(data.get("base_model"), str):
            data["base_model"] = {"model": data["base_model"], "gguf_file": ""}
        known = {f for f in cls.__dataclass_fields__ if f not in ("version", "extra")}
        values = {k: _checked_field(cls.__dataclass_fields__[k], v, source) for k, v in data.items() if k in known}
        spec = cls(**{k: v for k, v in values.items() if v is not None or k == "plan"},
                   extra={k: v for k, v in data.items() if k not in known})
        spec.version = RUN_SPEC_VERSION
        return spec

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "extra"}
        return data | self.extra


def _checked_field(spec_field: dataclasses.Field, value: Any, source: str) -> Any:
    """A run.json value of the field's type (null: the default), or a TunewizError naming the field:
    a readers' `.get` on a list or a null would end in a traceback far from the file."""
    default = spec_field.default if spec_field.default_factory is dataclasses.MISSING else spec_field.default_factory()
    if value is None or default is None:  # plan: a dict or null
        if value is not None and not isinstance(value, dict):
            raise TunewizError(f"{source}: {spec_field.name} should be an object, not {type(value).__name__}")
        return value
    if not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool):
        raise TunewizError(f"{source}: {spec_field.name} should be {_JSON_TYPES[type(default)]}, "
                           f"not {_JSON_TYPES.get(type(value), type(value).__name__)}")
    return value


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "true or false"}


@dataclass
class RunStatus:
    """What status.json says about a run."""

    state: str = "starting"
    """starting, running, stopping, finished, stopped, failed."""
    pid: int = 0
    pid_start: str = ""
    """When `pid` started (process_start): after a reboot or a kill -9 the system may give the pid to
    another process, which must not keep a dead run "running"."""
    host: str = ""
    """The machine `pid` runs on (a multi-node run's folder is read from every node)."""
    step: int = 0
    max_steps: int = 0
    message: str = ""
    started: str = ""
    resumed: str = ""
    """When the latest `--resume` of the run started ("" if never): the time before it is not its pace."""
    ended: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def status_path(self) -> Path:
        return self.dir / STATUS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.dir / METRICS_FILE

    @property
    def log_path(self) -> Path:
        return self.dir / LOG_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.dir / CHECKPOINTS_DIR

    @property
    def config_path(self) -> Path:
        return self.dir / RUN_CONFIG_FILE

    def read_spec(self) -> RunSpec:
        """run.json as a RunSpec; a TunewizError naming the file when it is missing or broken."""
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TunewizError(f"{self.config_path}: missing; this run folder was not written by tunewiz's "
                               "trainer") from None
        except ValueError as exc:
            raise TunewizError(f"{self.config_path}: not valid JSON ({exc})") from None
        return RunSpec.from_dict(data, str(self.config_path))

    def write_spec(self, spec: RunSpec) -> None:
        atomic_write_text(self.config_path, json.dumps(spec.to_dict(), indent=2) + "\n")

    def read_status(self) -> RunStatus:
        try:
            data = json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return RunStatus(state="unknown", message="status.json is missing or unreadable")
        if not isinstance(data, dict):
            return RunStatus(state="unknown", message="status.json is not a JSON object")
        known = {k: data.pop(k) for k in list(data) if k in RunStatus.__dataclass_fields__ and k != "extra"}
        status = RunStatus(**known, extra=data)
        try:
            status.pid = int(status.pid or 0)  # "4242" written by hand
        except (TypeError, ValueError):
            status.pid = 0
        return status

    def write_status(self, status: RunStatus) -> None:
        data = {k: v for k, v in status.__dict__.items() if k != "extra"} | status.extra
        atomic_write_text(self.status_path, json.dumps(data, indent=2) + "\n")

    def is_alive(self) -> bool:
        """Whether the run's process still exists (the status file alone can be stale after kill -9)."""
        status = self.read_status()
        if status.state not in ACTIVE_STATES or not status.pid:
            return False
        if status.host and status.host != socket.gethostname():
            # Another node's process cannot be asked; it rewrites status.json every step.
            try:
                age = time.time() - self.status_path.stat().st_mtime
            except OSError:
                return False
            return age < REMOTE_HEARTBEAT_S
        try:
            os.kill(status.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, as another user's process
        return not status.pid_start or process_start(status.pid) in ("", status.pid_start)

    def state(self) -> str:
        """The status file's state, corrected to 'died' when an active run's process is gone."""
        status = self.read_status()
        if status.state in ACTIVE_STATES and not self.is_alive():
            return "died"
        return status.state

    def metrics(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.metrics_path))

    def checkpoint_folders(self) -> list[Path]:
        """The folders named checkpoint-<step>, complete or not, by step (a copy named checkpoint-100.bak
        or anything else the user keeps there is not one)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = [p for p in self.checkpoints_dir.iterdir() if CHECKPOINT_NAME.fullmatch(p.name) and p.is_dir()]
        return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))

    def complete_checkpoints(self) -> list[Path]:
        """Checkpoint folders that carry the completion marker, by step."""
        return [p for p in self.checkpoint_folders() if (p / COMPLETE_MARKER).exists()]


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file that is being appended to; a torn last line is skipped."""
    try:
        handle = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if line.endswith("\n"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):  # a stray `null` or number is no record
                    yield record


def state_said(state: str, message: str) -> str:
    """A run's state with its status message, once: "finished 80 steps", not "finished: finished 80 steps"."""
    return message if message.startswith(state) else f"{state}: {message}" if message else state


def seconds_left(train_records: list[dict[str, Any]], max_steps: int, since: str = "") -> float | None:
    """Seconds to the run's last step at the pace of its steps so far, from the times metrics.jsonl
    records (so the checks between steps count, and a re-attached view knows the pace at once).
    `since` (status.json's `resumed`): only steps since then count, not the time a resumed run lay dead.
    None until two steps are timed."""
    from datetime import datetime

    try:
        start = datetime.fromisoformat(since).timestamp() if since else 0.0
    except (TypeError, ValueError):  # status.json edited by hand: the pace of every step then
        start = 0.0
    timed = [(int(r["step"]), float(r["time"])) for r in train_records
             if isinstance(r.get("step"), (int, float)) and isinstance(r.get("time"), (int, float))
             and r["time"] >= start]
    if len(timed) < 2 or not max_steps or timed[-1][0] <= timed[0][0]:
        return None
    (first_step, first_time), (last_step, last_time) = timed[0], timed[-1]
    pace = (last_time - first_time) / (last_step - first_step)
    return max(0.0, pace * (max_steps - last_step))


def recall_figure(record: dict[str, Any] | None) -> str:
    """A recall check's figure for a progress line ("reworded 12/16"), "" for none or step 0's (the base)."""
    reworded = (record or {}).get("reworded")
    if not record or not record.get("step") or not isinstance(reworded, dict) or not reworded.get("total"):
        return ""
    return f"reworded {reworded.get('recalled', 0)}/{reworded['total']}"


def duration(seconds: float | None) -> str:
    """"1m05s", "2h03m", or "-" when not known."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def list_runs(runs_dir: Path) -> list[Run]:
    """Runs of a project, oldest first (run ids start with a sortable timestamp)."""
    if not runs_dir.is_dir():
        return []
    return [Run(p) for p in sorted(runs_dir.iterdir()) if (p / STATUS_FILE).exists()]


# ---------------------------------------------------------------- checkpoint integrity

def file_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """Name -> {size, sha256} of the files of a checkpoint folder (the marker excluded)."""
    digests = {}
    for file in sorted(folder.iterdir()):
        if file.is_file() and file.name != COMPLETE_MARKER:
            digests[file.name] = {"size": file.stat().st_size, "sha256": _sha256(file)}
    return digests


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_damage(folder: Path) -> str | None:
    """What is wrong with a complete checkpoint's files (naming the file), or None when it is intact."""
    try:
        marker = json.loads((folder / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{folder / COMPLETE_MARKER} is unreadable"
    for name, want in (marker.get("files") or {}).items():
        file = folder / name
        if not file.is_file():
            return f"{file} is missing"
        if file.stat().st_size != want["size"]:
            return f"{file} is damaged ({file.stat().st_size:,} bytes, {want['size']:,} when it was saved)"
        if _sha256(file) != want["sha256"]:
            return f"{file} is damaged (its contents changed since it was saved)"
    return _structure_damage(folder)


def _structure_damage(folder: Path) -> str | None:
    """Checks that need no checksum: the adapter's config parses and its weights file is whole."""
    config = folder / "adapter_config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{config} is missing"
    except (OSError, ValueError) as exc:
        return f"{config} is damaged ({exc})"
    weights = folder / "adapter_model.safetensors"
    try:
        with weights.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
    except FileNotFoundError:
        return f"{weights} is missing"
    except (OSError, ValueError):
        return f"{weights} is damaged (its header is unreadable)"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if weights.stat().st_size < 8 + size + end:
        return f"{weights} is damaged (cut short: {weights.stat().st_size:,} of {8 + size + end:,} bytes)"
    return None


def latest_run(runs_dir: Path) -> Run | None:
    runs = list_runs(runs_dir)
    return runs[-1] if runs else None


def process_start(pid: int) -> str:
    """Which process `pid` is: the boot and the clock tick it started at (Linux); "" where unknown."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # the name before ")" may hold spaces
    return f"{boot}:{fields[19]}" if len(fields) > 19 else ""


def newer_run_note(project: Any) -> str:
    """A line for the commands that follow the user's pick (checkpoints, export) when a run newer than
    the picked one exists: the pick stays where the user put it, but a new run's model must not be
    passed over without a word. Empty when nothing is pinned or the pinned run is the latest."""
    pinned, runs = project.config.checkpoint.run, list_runs(project.runs_dir)
    if not pinned or not runs or runs[-1].id == pinned or pinned not in {r.id for r in runs}:
        return ""
    return (f"the picked checkpoint is in run {pinned} (checkpoint.run); run {runs[-1].id} is newer: "
            f"`tunewiz pick best --run {runs[-1].id}` (or a step) picks in it")


def find_run(project: Any, run_id: str | None = None, *, pinned: bool = False) -> Run:
    """Which run a command means: `run_id` (an id, or a unique prefix of one); else, with `pinned`,
    the run the project's `[checkpoint] run` names (checkpoints and export follow the user's pick);
    else the latest."""
    runs = list_runs(project.runs_dir)
    if run_id:
        found = [r for r in runs if r.id == run_id] or [r for r in runs if r.id.startswith(run_id)]
        if len(found) != 1:
            raise TunewizError(f"no run {run_id!r} in {project.runs_dir}" if not found else
                               f"{run_id!r} matches several runs: {', '.join(r.id for r in found)}")
        return found[0]
    wanted = project.config.checkpoint.run if pinned else ""
    if wanted:
        for run in runs:
            if run.id == wanted:
                return run
        raise TunewizError(f"{project.file}: checkpoint.run = '{wanted}' but there is no run folder "
                           f"{project.runs_dir / wanted}")
    if not runs:
        raise TunewizError(f"{project.runs_dir}: no training runs yet (start one with `tunewiz train`)")
    return runs[-1]
