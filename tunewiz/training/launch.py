"""Starting, resuming and stopping a training run outside the caller's session.

`start_run` snapshots what the run trains into its folder (run.json, dataset.jsonl),
then starts the engine detached: a short-lived helper process starts it in a new
session (setsid) and exits, so the engine is nobody's child. Closing the terminal,
dropping SSH or quitting the TUI (SIGHUP) never reaches it, and no zombie is left
for `Run.is_alive()` to mistake for a live run. Its stdout/stderr go to train.log.

run.json is a `tunewiz.runs.RunSpec` (the contract other steps read; `run_spec` fills it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import datetime as _dt
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from tunewiz.errors import TunewizError, disk_error, is_disk_error
from tunewiz.hardware import check_fits, check_sharding, hardware_report
from tunewiz.project import Project, atomic_write_text
from tunewiz.recommend import TrainingPlan, plan_training
from tunewiz.runs import DATA_FILE, STOP_FILE, Run, RunSpec, RunStatus, find_run, list_runs, process_start



def new_run_id() -> str:
    """Sortable by time: 20261123-171500-ab12."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclasses.dataclass(frozen=True)
class Nodes:
    """This machine's place in a run over several machines (one torchrun per machine).

    Node 0 creates the run; every other node joins it by id, on the same project folder
    (a shared file system: checkpoints, metrics and resume live there). Rank 0 (on node 0
    with `master_addr`) writes metrics, checkpoints and status; each node writes its log.
    """

    count: int = 1
    rank: int = 0
    master_addr: str = ""
    master_port: int = 29500
    rdzv_endpoint: str = ""
    """HOST:PORT of a c10d rendezvous instead of a master address (ranks in joining order)."""

    def check(self, join: str | None) -> None:
        if self.count < 1:
            raise TunewizError(f"--nnodes {self.count}: must be at least 1")
        if self.count == 1:
            if self.rank or join or self.master_addr or self.rdzv_endpoint:
                raise TunewizError("--node-rank, --join, --master-addr and --rdzv-endpoint need --nnodes 2 or more")
            return
        if not 0 <= self.rank < self.count:
            raise TunewizError(f"--node-rank {self.rank}: must be from 0 to {self.count - 1} (--nnodes {self.count})")
        if bool(self.master_addr) == bool(self.rdzv_endpoint):
            raise TunewizError("a run on several machines needs --master-addr HOST (node 0's address that every "
                               "node can reach) or --rdzv-endpoint HOST:PORT, one of the two")
        if not 1 <= self.master_port <= 65535:
            raise TunewizError(f"--master-port {self.master_port}: must be from 1 to 65535")
        if self.rank > 0 and not join:
            raise TunewizError(f"node {self.rank} joins the run node 0 started: add --join RUN (node 0 printed "
                               "the command)")
        if self.rank == 0 and join:
            raise TunewizError("--join is for nodes 1 and up; node 0 starts the run (or --resume RUN)")

    def torchrun_args(self, run_id: str) -> list[str]:
        if self.count == 1:
            return ["--standalone"]
        if self.rdzv_endpoint:
            return [f"--nnodes={self.count}", "--rdzv_backend=c10d", f"--rdzv_endpoint={self.rdzv_endpoint}",
                    f"--rdzv_id={run_id}"]
        return [f"--nnodes={self.count}", f"--node_rank={self.rank}", f"--master_addr={self.master_addr}",
                f"--master_port={self.master_port}"]

    def join_command(self, project: Project, run_id: str, gpus: int, rank: int) -> str:
        """What node `rank` runs to join this run."""
        import shlex

        where = (f"--master-addr {self.master_addr} --master-port {self.master_port}" if self.master_addr
                 else f"--rdzv-endpoint {self.rdzv_endpoint}")
        return (f"tunewiz train -p {shlex.quote(str(project.root.resolve()))} --nnodes {self.count} "
                f"--node-rank {rank} {where} --gpus {gpus} --join {run_id}")


def node_log_name(rank: int) -> str:
    return "train.log" if rank == 0 else f"train-node{rank}.log"


def run_spec(project: Project, run_id: str, train: list, validation: list, gpus: int,
             plan: TrainingPlan, nnodes: int = 1) -> RunSpec:
    cfg = project.config
    hp = plan.hyperparameters
    return RunSpec(
        run_id=run_id,
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        project_dir=str(project.root.resolve()),
        base_model={"model": cfg.base_model.model, "gguf_file": cfg.base_model.gguf_file},
        base_dir=_cached_base_dir(project) or "",
        template={"name": cfg.template.name, "family": None if cfg.template.name == "auto" else cfg.template.name},
        system_prompt=cfg.template.system_prompt,
        max_seq_len=cfg.template.max_seq_len,
        kind=plan.kind,
        train_ids=[p.id for p in train],
        validation_ids=[p.id for p in validation],
        lora={"r": hp["lora_r"], "alpha": hp["lora_alpha"], "dropout": hp["lora_dropout"],
              "target_modules": hp["target_modules"]},
        hyperparameters=hp,
        hardware={"device": cfg.hardware.device, "precision": cfg.hardware.precision,
                  "quantization": cfg.hardware.quantization,
                  "sharding": cfg.hardware.sharding,
                  "threads": cfg.hardware.threads, "gpus": gpus, "nnodes": nnodes},
        evaluation=dataclasses.asdict(cfg.evaluation),
        plan=plan.to_dict(),
        tracking={"backend": cfg.tracking.backend, "project": cfg.tracking.project or project.name},
    )


def _cached_base_dir(project: Project) -> str | None:
    """The base model's HF folder when no conversion is needed (the engine converts otherwise)."""
    from tunewiz.basemodel import READY_MARKER, converted_path, is_hf_folder, locate_gguf

    base = project.config.base_model
    gguf = locate_gguf(base.model, base.gguf_file, project.root)
    if gguf is not None:
        folder = converted_path(gguf)
        return str(folder) if (folder / READY_MARKER).exists() else None
    path = project.path(base.model)
    return str(path.resolve()) if path.is_dir() and is_hf_folder(path) else None


def prepare_run(project: Project, gpus: int, nnodes: int = 1, planned: tuple | None = None) -> Run:
    """A new run folder with run.json, dataset.jsonl and status 'starting'.

    dataset.jsonl holds the samples (`train`, `validation`) and the checks that are never
    trained on (`recall`, `reworded`, `general`: see tunewiz.training.recall). `planned`: what
    plan_run returned (made now when not given)."""
    train, validation, plan, checks = planned or plan_run(project, gpus * nnodes)
    run = Run(project.runs_dir / new_run_id())
    try:
        run.dir.mkdir(parents=True)
        lines = [json.dumps({"id": p.id, "split": split, "question": p.question, "answer": p.answer,
                             "system": p.system} | ({"history": p.history} if p.history else {}),
                            ensure_ascii=False) + "\n"
                 for split, pairs in (("train", train), ("validation", validation)) for p in pairs]
        lines += [json.dumps(record, ensure_ascii=False) + "\n" for record in checks]
        atomic_write_text(run.dir / DATA_FILE, "".join(lines))
        spec = run_spec(project, run.id, train, validation, gpus, plan, nnodes)
        spec.evaluation["reworded_sources"] = dict(Counter(r.get("source", "rules") for r in checks
                                                           if r["split"] == "reworded"))
        run.write_spec(spec)
        run.write_status(RunStatus(state="starting", message="starting the training process"))
    except BaseException as exc:
        shutil.rmtree(run.dir, ignore_errors=True)  # no half-made run folder stays behind
        if is_disk_error(exc):
            raise disk_error(exc, "no run was started", run.dir) from None
        raise
    return run


def plan_run(project: Project, gpus: int) -> tuple[list, list, TrainingPlan, list]:
    """(train pairs, validation pairs, plan, check records).

    The split follows the kind of data.

    Facts all train: a fact held out can never be recalled, so its loss only rises;
    reworded questions of trained facts validate instead."""
    train, validation, plan, reworded = _split_and_plan(project, gpus)
    return train + reworded, validation, plan, check_records(project, train, reworded, plan.kind)


def next_run_plan(project: Project, gpus: int | None = None) -> TrainingPlan:
    """What `tunewiz train` would train with now (on `gpus`, default hardware.gpus): the kind of data,
    the values the plan resolves under `preset = auto` (each with why), the steps and the expected
    time. TunewizError when there is nothing to train on yet."""
    return _split_and_plan(project, gpus or project.config.hardware.gpus)[2]


def _split_and_plan(project: Project, gpus: int) -> tuple[list, list, TrainingPlan, list]:
    """(train pairs, validation pairs, plan, the train pairs' train rewordings as samples)."""
    from tunewiz.dataset import PairStore, project_kind, project_split
    from tunewiz.evalsets import REWORDINGS_FILE, RewordingStore, training_samples
    from tunewiz.hardware import detect, model_shape

    cfg = project.config
    store = PairStore(project.pairs_path)
    train, validation = project_split(project, store)
    if not train:
        raise TunewizError(f"{project.pairs_path}: no pairs to train on (import or generate some; "
                           "rejected pairs never train)")
    kind, why = project_kind(project, train + validation)
    if kind == "facts" and cfg.dataset.validation_fraction > 0:
        why += "; dataset.validation_fraction is not used for facts"
    hw = detect()
    device = cfg.hardware.device if cfg.hardware.device != "auto" else ("cuda" if hw.gpus else "mps" if hw.mps else "cpu")
    if (device == "cuda" and not hw.gpus) or (device == "mps" and not hw.mps):
        raise TunewizError(f"{project.file}: hardware.device = {device}, but this machine has no "
                           f"{'NVIDIA GPU that nvidia-smi lists' if device == 'cuda' else 'Apple GPU'}: set "
                           "hardware.device = auto (or cpu), or train where the GPU is")
    shape = model_shape(cfg.base_model.model, cfg.base_model.gguf_file, project.root)
    cores = cfg.hardware.threads or hw.cpu_cores
    reworded = training_samples(RewordingStore(project.path(REWORDINGS_FILE)), train, cfg.dataset.train_on)
    plan = plan_training(project, kind, why, train, validation, device, cores,
                         shape.params / 1e9 if shape else None, gpus if device == "cuda" else 1,
                         reworded=len(reworded))
    unreadable = store.unreadable_notice()
    if unreadable:  # a pair the user made and cannot see train is one they would want to know of
        plan.notices.append(unreadable)
    return train, validation, plan, reworded


def hardware_report_for_next_run(project: Project):
    """The hardware report (tunewiz.hardware.hardware_report) with the memory estimate for the values the
    next run would train with: under `preset = auto` the plan may choose another batch size or LoRA rank
    than the project's. A project with nothing to train yet gets the estimate of its own settings."""
    try:
        planned = next_run_plan(project).hyperparameters
    except TunewizError:  # no pairs yet, or an unreadable base model: the project's own values
        planned = None
    return hardware_report(project, hyperparameters=planned)


def check_records(project: Project, train: list, reworded: list, kind: str) -> list[dict[str, Any]]:
    """The questions asked at every checkpoint: trained ones, their rewordings, everyday prompts.
    `reworded`: the train rewordings the run trains on (a question that trains is never asked reworded)."""
    from tunewiz.dataset import PairStore
    from tunewiz.evalsets import (GENERAL_PROMPTS, REWORDINGS_FILE, RewordingStore, asked_pairs,
                                  check_texts_to_skip, live_rewordings, rule_rewording)
    from tunewiz.scoring import tokens

    evaluation = project.config.evaluation
    records: list[dict[str, Any]] = []
    sample = asked_pairs(train, evaluation.questions, project.config.dataset.split_seed)
    pairs = {p.id: p for p in PairStore(project.pairs_path)}
    trained = check_texts_to_skip(train + reworded)
    stored: dict[str, list] = {}
    for rewording in live_rewordings(RewordingStore(project.path(REWORDINGS_FILE)), pairs, "check"):
        if tuple(tokens(rewording.question)) not in trained:
            stored.setdefault(rewording.pair_id, []).append(rewording)
    for pair in sample:
        records.append({"split": "recall", "id": pair.id, "question": pair.question, "answer": pair.answer,
                        "system": pair.system})
        if kind != "facts":
            continue
        mine = stored.get(pair.id) or []
        # Rule rewordings keep the question's words: a pair's rewordings from a model, a file or a person
        # measure recall in new words, so they stand in for its rule ones.
        mine = [r for r in mine if r.source != "rules"] or mine
        texts = [(r.question, r.source) for r in mine] or [(rule_rewording(pair.question), "rules")]
        for text, source in texts:
            if text and tuple(tokens(text)) not in trained:
                records.append({"split": "reworded", "pair_id": pair.id, "question": text, "answer": pair.answer,
                                "system": pair.system, "source": source})
    if evaluation.general_prompts:
        records += [{"split": "general", "question": prompt} for prompt in GENERAL_PROMPTS]
    return records


def start_run(project: Project, *, resume: str | bool | None = None,
              gpus: int | None = None, allow_over_memory: bool = False, parallel: bool = False,
              nodes: Nodes = Nodes(), join: str | None = None) -> Run:
    """Start a new run (or resume one) as a detached process; returns at once.

    One run per project at a time: another live run is an error naming it, unless `parallel`.
    On several machines (`nodes`), node 0 starts or resumes the run and the others `join` it.

    The engine always runs detached; a foreground caller follows its files
    (`tunewiz.console.follow_with_progress`).
    """
    gpus = gpus or project.config.hardware.gpus
    nodes.check(join)
    check_sharding(project, gpus * nodes.count)
    allow = allow_over_memory or project.config.hardware.allow_over_memory
    if join:
        return join_run(project, join, gpus, nodes, allow)
    from tunewiz.training.tracking import check_tracking

    check_tracking(project.config.tracking.backend)  # a missing package is said now, not in train.log
    # The memory estimate is for the values the run trains with: a new run's plan (under preset = auto it
    # may choose another batch size or LoRA rank than the project's), a resumed run's run.json.
    planned = None
    if resume:
        trained_with = find_run(project, resume if isinstance(resume, str) else None).read_spec().hyperparameters
    else:
        planned = plan_run(project, gpus * nodes.count)
        trained_with = planned[2].hyperparameters
    check_fits(project, gpus=gpus, allow=allow, hyperparameters=trained_with)
    with _start_lock(project):  # two `tunewiz train` at once: the second sees the first's pid
        if not parallel:
            running = [r for r in list_runs(project.runs_dir) if r.is_alive()]
            if running:
                raise TunewizError(f"run {running[-1].id} of this project is still running (pid "
                                   f"{running[-1].read_status().pid}); follow it with `tunewiz logs -f`, stop it "
                                   "with `tunewiz stop`, or start another beside it with `--parallel`")
        if resume:
            run = find_run(project, resume if isinstance(resume, str) else None)
            if run.is_alive():
                raise TunewizError(f"run {run.id} is still running (pid {run.read_status().pid}); "
                                   "stop it first with `tunewiz stop`")
            (run.dir / STOP_FILE).unlink(missing_ok=True)
            status = run.read_status()
            status.state, status.message, status.ended = "starting", "resuming", ""
            run.write_status(status)
        else:
            run = prepare_run(project, gpus, nodes.count, planned)
        _check_nodes_match(run, gpus, nodes)
        spawn(run, gpus, resume=bool(resume), nodes=nodes)
    return run


def join_run(project: Project, run_id: str, gpus: int, nodes: Nodes, allow_over_memory: bool = False) -> Run:
    """Node 1, 2, ... of a multi-node run: start this machine's processes of the run node 0 started.

    Training waits until every node has joined, so the run has no checkpoint yet unless node 0
    resumed it, and then every node continues from the same newest intact checkpoint."""
    run = find_run(project, run_id)
    state = run.state()
    if state not in ("starting", "running"):
        raise TunewizError(f"run {run.id} is {state}: start (or --resume) it on node 0 first, then join it")
    _check_nodes_match(run, gpus, nodes)
    check_fits(project, gpus=gpus, allow=allow_over_memory, hyperparameters=run.read_spec().hyperparameters)
    spawn(run, gpus, resume=bool(run.complete_checkpoints()), nodes=nodes)
    return run


def _check_nodes_match(run: Run, gpus: int, nodes: Nodes) -> None:
    hardware = run.read_spec().hardware
    want = (int(hardware.get("nnodes", 1) or 1), int(hardware.get("gpus", 1) or 1))
    if (nodes.count, gpus) != want:
        raise TunewizError(f"run {run.id} was started on {want[0]} node(s) of {want[1]} process(es) each; "
                           f"this node asks for --nnodes {nodes.count} --gpus {gpus}: use the same values")



@contextlib.contextmanager
def _start_lock(project: Project):
    project.runs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(project.runs_dir / ".start.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def engine_command(run: Run, gpus: int, resume: bool, nodes: Nodes = Nodes()) -> list[str]:
    tail = [str(run.dir)] + (["--resume"] if resume else [])
    if gpus > 1 or nodes.count > 1:
        return [sys.executable, "-m", "torch.distributed.run", *nodes.torchrun_args(run.id),
                f"--nproc_per_node={gpus}", "-m", "tunewiz.training.engine", *tail]
    return [sys.executable, "-m", "tunewiz.training.engine", *tail]


def spawn(run: Run, gpus: int, resume: bool, nodes: Nodes = Nodes()) -> int:
    """Start the engine in its own session through a helper that exits at once; return its pid.

    Node 0 records the pid in status.json (the engine's rank 0 keeps it up to date); another
    node's processes only write their own log."""
    command = engine_command(run, gpus, resume, nodes)
    log_path = run.dir / node_log_name(nodes.rank)
    helper = subprocess.run([sys.executable, "-m", "tunewiz.training.launch", str(log_path), *command],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if helper.returncode != 0 or not helper.stdout.strip().isdigit():
        raise TunewizError(f"could not start the training process: {helper.stderr.strip() or helper.stdout}")
    pid = int(helper.stdout.strip())
    if nodes.rank == 0:
        status = run.read_status()
        status.pid, status.pid_start, status.host = pid, process_start(pid), socket.gethostname()
        run.write_status(status)
    return pid


def stop_run(run: Run) -> None:
    """Ask a run to stop gracefully: it finishes its step, saves a checkpoint and exits."""
    if not run.is_alive():
        raise TunewizError(f"run {run.id} is not running (state: {run.state()})")
    (run.dir / STOP_FILE).write_text("stop requested\n", encoding="utf-8")


def wait_for_end(run: Run, timeout: float, poll: float = 0.2) -> str:
    """Wait until the run's process is gone or `timeout` passes; the final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.is_alive():
        time.sleep(poll)
    return run.state()


def _daemon_main(argv: list[str]) -> int:
    """The helper: start `command` in a new session with output to the log, print its pid, exit."""
    log_path, command = argv[0], argv[1:]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, close_fds=True)
    print(proc.pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_daemon_main(sys.argv[1:]))
