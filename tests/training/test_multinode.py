"""A run over several machines: two "nodes" of processes on loopback (torchrun, gloo), one project folder."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from tunewiz.errors import TunewizError
from tunewiz.runs import find_run
from tunewiz.training.launch import Nodes, start_run, stop_run, wait_for_end


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tunewiz(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "tunewiz", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def join_line(stdout: str) -> list[str]:
    """The command node 0 printed for node 1, as arguments after `tunewiz`."""
    line = next(line for line in stdout.splitlines() if line.strip().startswith("node 1: tunewiz train"))
    return shlex.split(line.split("tunewiz", 1)[1])


def wait_for_step(run, step: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while run.read_status().step < step:
        assert time.monotonic() < deadline, run.log_path.read_text()
        assert run.state() in ("starting", "running"), run.log_path.read_text()
        time.sleep(0.2)


@pytest.mark.slow
def test_two_nodes_train_one_run_and_resume_it(tiny_project):
    tiny_project.set("hyperparameters.max_steps", 400)
    tiny_project.set("hyperparameters.save_steps", 1000)
    root = str(tiny_project.root)
    node0 = ["train", "-p", root, "--nnodes", "2", "--node-rank", "0", "--master-addr", "127.0.0.1",
             "--master-port", str(free_port()), "--detach"]
    started = tunewiz(*node0)
    run = find_run(tiny_project)
    join = join_line(started.stdout)
    assert join[join.index("--join") + 1] == run.id and "--master-addr" in join
    tunewiz(*join, "--detach")

    wait_for_step(run, 3)
    stop_run(run)
    assert wait_for_end(run, 120) == "stopped", run.log_path.read_text()
    first = [m["step"] for m in run.metrics() if m["type"] == "train"]
    assert run.read_status().extra["world_size"] == 2  # two nodes of one process each
    assert run.read_spec().to_dict()["hardware"]["nnodes"] == 2
    node1_log = run.dir / "train-node1.log"
    assert "device cpu x2" in node1_log.read_text()  # each node keeps its own log

    # Resume: node 0 with --resume, node 1 joins again and continues from the same checkpoint.
    port = str(free_port())
    tunewiz(*node0[:node0.index("--master-port")], "--master-port", port, "--resume", run.id, "--detach")
    tunewiz("train", "-p", root, "--nnodes", "2", "--node-rank", "1", "--master-addr", "127.0.0.1",
            "--master-port", port, "--join", run.id, "--detach")
    wait_for_step(run, first[-1] + 2)
    stop_run(run)
    assert wait_for_end(run, 120) == "stopped", run.log_path.read_text()
    steps = [m["step"] for m in run.metrics() if m["type"] == "train"]
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] > first[-1]  # each step once, none lost
    assert f"resuming from checkpoint-{first[-1]}" in node1_log.read_text()
    assert f"resuming from checkpoint-{first[-1]}" in run.log_path.read_text()


def test_node_settings_are_checked_before_anything_starts(tiny_project):
    def refused(match: str, **kwargs) -> None:
        with pytest.raises(TunewizError, match=match):
            start_run(tiny_project, **kwargs)

    refused("needs --master-addr HOST", nodes=Nodes(count=2))
    refused("node 1 joins the run node 0 started: add --join RUN", nodes=Nodes(count=2, rank=1, master_addr="h"))
    refused("--node-rank 2: must be from 0 to 1", nodes=Nodes(count=2, rank=2, master_addr="h"), join="x")
    refused("need --nnodes 2 or more", join="x")
    refused("--join is for nodes 1 and up", nodes=Nodes(count=2, master_addr="h"), join="x")
    assert not tiny_project.runs_dir.exists() or not any(tiny_project.runs_dir.iterdir())

    started = start_run(tiny_project, nodes=Nodes(count=2, master_addr="127.0.0.1", master_port=free_port()))
    try:
        with pytest.raises(TunewizError, match=r"started on 2 node\(s\) of 1 process\(es\) each.*--gpus 2"):
            start_run(tiny_project, gpus=2, nodes=Nodes(count=2, rank=1, master_addr="127.0.0.1"), join=started.id)
    finally:
        os.killpg(started.read_status().pid, signal.SIGKILL)  # node 0 was waiting for node 1
    wait_for_end(started, 10)
    with pytest.raises(TunewizError, match=r"is died: start \(or --resume\) it on node 0 first"):
        start_run(tiny_project, nodes=Nodes(count=2, rank=1, master_addr="127.0.0.1"), join=started.id)
