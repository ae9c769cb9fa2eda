"""Heavy reads done in a child process, so the UI thread keeps the GIL to itself.

The step states read every pair (seconds at 100k pairs) and near-duplicate
detection hashes every question; done in a thread of the UI process they would
make keys lag. Each is run as `python -m tunewiz.tui.background JOB` with JSON in
and out; the app's thread workers wait for the answer. (A plain child process
rather than multiprocessing: spawn would re-import whatever main module started
the app.)

    echo '"proj"' | python -m tunewiz.tui.background states
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from typing import Any


def project_states(root: str) -> list[dict[str, Any]]:
    from tunewiz.project import Project
    from tunewiz.status import project_status

    return [asdict(state) for state in project_status(Project.load(root))]


def duplicate_ids(items: list[list[str]]) -> list[str]:
    """Ids of pairs whose question is a near-duplicate of another's; items are [id, question]."""
    from tunewiz.dedup import near_duplicate_groups

    groups = near_duplicate_groups([question for _, question in items])
    return sorted({items[i][0] for group in groups for i in group})


def export_job(root: str) -> str:
    """Export the picked checkpoint (merging needs torch: never in the UI process).

    The app holds the project's write lock for the person; this child works under it.
    Progress lines go to stdout as they come.
    """
    from tunewiz.export import export_model
    from tunewiz.project import Project

    result = export_model(Project.load(root), on_progress=lambda line: print(line, flush=True), force=True)
    return f"exported to {result.folder}"


JOBS = {"states": project_states, "duplicates": duplicate_ids, "export": export_job}


_running: set[subprocess.Popen] = set()


def run_job(job: str, argument: Any, timeout: float = 600) -> Any:
    """Run a job in a child process and return its result (call from a thread worker)."""
    child = subprocess.Popen([sys.executable, "-m", "tunewiz.tui.background", job], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _running.add(child)
    try:
        out, err = child.communicate(json.dumps(argument), timeout=timeout)
    finally:
        _running.discard(child)
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode != 0:
        lines = err.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"{job} stopped with exit status {child.returncode}")
    return json.loads(out)


def stream_job(job: str, argument: Any, on_line) -> int:
    """Run a job in a child, calling `on_line` with each line it prints; its exit status."""
    child = subprocess.Popen([sys.executable, "-m", "tunewiz.tui.background", job], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    _running.add(child)
    try:
        child.stdin.write(json.dumps(argument))
        child.stdin.close()
        for line in child.stdout:
            on_line(line.rstrip("\n"))
        return child.wait()
    finally:
        _running.discard(child)


def stop_jobs() -> None:
    """Kill the children still working (the app is closing; their answers are not needed)."""
    for child in list(_running):
        child.kill()


def project_status_in_child(root: str):
    from tunewiz.status import StepState

    return [StepState(**state) for state in run_job("states", root)]


def duplicates_in_child(items: list[tuple[str, str]]) -> set[str]:
    return set(run_job("duplicates", [list(item) for item in items]))


if __name__ == "__main__":
    os.nice(10)  # background work: the UI process comes first on a busy machine
    try:
        result = JOBS[sys.argv[1]](json.load(sys.stdin))
    except Exception as exc:  # the parent shows the last line: make it the message, not a traceback
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    json.dump(result, sys.stdout)
