"""Heavy reads done in a child process, so the UI thread keeps the GIL to itself.

The step states read every pair (seconds at 100k pairs) and near-duplicate
detection hashes every question; done in a thread of the UI process they would
make keys lag. Each is run as `python -m tunewiz.tui.background JOB` with JSON in
and out; the app's thread workers wait for the answer. (A plain child process
rather than multiprocessing: spawn would re-import whatever main module started
the app.)

    echo '"proj"' | python -m tunewiz.tui.background states

A failing child says why on its last stderr line (ERROR_MARK and JSON): a TunewizError (the
user's mistake: a missing run, a bad value) comes back to the parent as a TunewizError with the
same message; anything else is a bug, which comes back as JobCrashed, its traceback kept in
JOB_ERRORS_LOG for a bug report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

from tunewiz.errors import TunewizError

ERROR_MARK = "tunewiz-job-error: "
PROGRESS_MARK = "tunewiz-job-progress: "
"""Before a progress line on a child's stderr (warnings of the libraries it loads are not progress)."""
JOB_ERRORS_LOG = "wizard-errors.log"
"""In the cache folder (~/.cache/tunewiz, TUNEWIZ_CACHE overrides): tracebacks of the wizard's failed jobs."""


class JobCrashed(Exception):
    """A child job failed with a bug, not a user's mistake: the message names the error and the log."""


def _error_line(exc: BaseException) -> str:
    """The child's last stderr line for `exc`."""
    return ERROR_MARK + json.dumps({"user": isinstance(exc, TunewizError), "type": type(exc).__name__,
                                    "message": str(exc)})


def job_error(job: str, stderr: str, returncode: int) -> Exception:
    """The error to raise in the parent for a child that exited with `returncode` and wrote `stderr`."""
    lines = stderr.rstrip().splitlines()
    if lines and lines[-1].startswith(ERROR_MARK):
        said = json.loads(lines[-1][len(ERROR_MARK):])
        if said["user"]:
            return TunewizError(said["message"])
        what, trace = f"{said['type']}: {said['message']}", "\n".join(lines[:-1])
    else:  # killed, out of memory, or an error before the child could say one
        what, trace = (lines[-1] if lines else f"exit status {returncode}"), stderr
    log = _log_crash(job, trace)
    return JobCrashed(f"{job} failed with an internal error ({what})" + (f"; traceback in {log}" if log else ""))


def _log_crash(job: str, trace: str) -> Path | None:
    import datetime as dt

    from tunewiz.basemodel import cache_dir

    try:
        log = cache_dir().parent / JOB_ERRORS_LOG  # cache_dir() is its base/ folder
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"--- {dt.datetime.now().isoformat(timespec='seconds')} {job}\n{trace.rstrip()}\n")
        return log
    except OSError:  # no writable cache: the message still names the error
        return None


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
    if result.ollama:  # [export] ollama_create
        print(f"{result.ollama.name} answered: {' '.join(result.ollama.answer.split())[:200]}", flush=True)
        return f"exported to {result.folder}; run it: ollama run {result.ollama.name}"
    return f"exported to {result.folder}"


def samples_job(argument: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Each complete checkpoint's greedy answers to a few validation questions (step -> answers).

    The model runs only for checkpoints without a cached samples.json; progress
    lines go to stderr (stdout carries the JSON answer)."""
    from tunewiz.checkpoints import rank_checkpoints
    from tunewiz.runs import find_run
    from tunewiz.project import Project
    from tunewiz.samples import sample_answers

    project = Project.load(argument["root"])
    report = rank_checkpoints(find_run(project, argument.get("run", ""), pinned=True))
    results = sample_answers(project, report, report.checkpoints, questions=argument.get("questions", 3),
                             on_progress=lambda line: print(PROGRESS_MARK + line, file=sys.stderr, flush=True))
    return {str(step): [asdict(a) for a in answers] for step, answers in results.items()}


def preview_job(root: str) -> dict[str, Any]:
    """The first training sample rendered with the base model's tokenizer, and the run's token counts
    (tunewiz.training.preview: the same figures `tunewiz preview` prints)."""
    from tunewiz.project import Project
    from tunewiz.training.preview import preview

    result = preview(Project.load(root))
    return {"family": result.family, "prompt": result.prompt, "completion": result.completion,
            "prompt_tokens": result.prompt_tokens, "answer_tokens": result.answer_tokens,
            "truncated": result.truncated, "dropped": result.dropped, "max_tokens": max(result.lengths, default=0)}


def push_job(argument: dict) -> str:
    """Push the newest export to the Hub (tunewiz.export.hub): progress lines on stdout."""
    from tunewiz.export.hub import push_export
    from tunewiz.project import Project

    result = push_export(Project.load(argument["root"]), argument["repo"],
                         on_progress=lambda line: print(line, flush=True))
    return f"pushed {len(result.files)} files to {result.repo_id} (private): {result.url}"


JOBS = {"states": project_states, "duplicates": duplicate_ids, "export": export_job, "samples": samples_job,
        "preview": preview_job, "push": push_job}


_running: set[subprocess.Popen] = set()


def run_job(job: str, argument: Any, timeout: float = 600, on_progress=None) -> Any:
    """Run a job in a child process and return its result (call from a thread worker).

    `on_progress` gets each progress line the child writes (PROGRESS_MARK on stderr) as it comes."""
    child = subprocess.Popen([sys.executable, "-m", "tunewiz.tui.background", job], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    _running.add(child)
    try:
        if on_progress is None:
            out, err = child.communicate(json.dumps(argument), timeout=timeout)
        else:
            out, err = _communicate_with_progress(child, json.dumps(argument), timeout, on_progress)
    finally:
        _running.discard(child)
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode != 0:
        raise job_error(job, err, child.returncode)
    return json.loads(out)


def _communicate_with_progress(child: subprocess.Popen, text: str, timeout: float, on_progress) -> tuple[str, str]:
    """As communicate(), calling `on_progress` with each stderr line (stdout is read in a thread)."""
    import threading

    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(child.stdout.read()), daemon=True)
    reader.start()
    child.stdin.write(text)
    child.stdin.close()
    timer = threading.Timer(timeout, child.kill)  # as communicate's timeout: a stuck child ends
    timer.start()
    lines = []
    try:
        for line in child.stderr:
            lines.append(line)
            if line.startswith(PROGRESS_MARK):
                on_progress(line[len(PROGRESS_MARK):].rstrip("\n"))
        child.wait()
        reader.join()
    finally:
        timer.cancel()
    return "".join(out), "".join(lines)


def stream_job(job: str, argument: Any, on_line) -> None:
    """Run a job in a child, calling `on_line` with each line it prints (progress, and a failure's
    traceback); raises as run_job does when it fails."""
    child = subprocess.Popen([sys.executable, "-m", "tunewiz.tui.background", job], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    _running.add(child)
    said: list[str] = []
    try:
        child.stdin.write(json.dumps(argument))
        child.stdin.close()
        for line in child.stdout:
            line = line.rstrip("\n")
            said.append(line)
            if not line.startswith(ERROR_MARK):
                on_line(line)
        returncode = child.wait()
    finally:
        _running.discard(child)
    if returncode != 0:
        raise job_error(job, "\n".join(said[-200:]), returncode)


class ChatSession:
    """A child process holding the fine-tuned and base models, answering one question at a time.

    Loading the models takes seconds, so the child loads them once (`chat` mode
    below) and then reads one JSON question per line, answering with JSON lines: the
    base model's answer in pieces as they are generated, then the fine-tuned one's.
    Call `ask` from a thread worker; `stop` (any thread) ends the child mid-answer."""

    def __init__(self, root: str, max_tokens: int):
        # stderr to a file: a pipe nobody reads while the child talks would fill and block it.
        self.errors = tempfile.TemporaryFile("w+")
        self.child = subprocess.Popen([sys.executable, "-m", "tunewiz.tui.background", "chat", root,
                                       str(max_tokens)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self.errors, text=True, bufsize=1)
        _running.add(self.child)
        self.description = self._read()["description"]

    def _read(self) -> dict[str, Any]:
        line = self.child.stdout.readline()
        if not line:
            self.close()
            self.errors.seek(0)
            raise job_error("chat", self.errors.read(), self.child.returncode)
        return json.loads(line)

    def ask(self, question: str) -> Iterator[tuple[str, str | None]]:
        """(side, piece) as the answers come, side "base" or "tuned"; (side, None) when that answer is whole."""
        self.child.stdin.write(json.dumps(question) + "\n")
        self.child.stdin.flush()
        while True:
            said = self._read()
            if said.get("done"):
                return
            yield said["side"], None if said.get("end") else said["text"]

    def stop(self) -> None:
        """Kill the child now (Esc on an answer): the reader sees it end; a new session loads the models again."""
        if self.child.poll() is None:
            self.child.kill()

    def close(self) -> None:
        _running.discard(self.child)
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        for pipe in (self.child.stdin, self.child.stdout):
            try:
                pipe.close()
            except OSError:  # a question still buffered for a child that is gone
                pass


def chat_child(root: str, max_tokens: int) -> None:
    """The child side of ChatSession: the description first, then an answer per question line."""
    from tunewiz.chat import open_chat
    from tunewiz.project import Project

    tuned, base, description = open_chat(Project.load(root), compare=True)
    print(json.dumps({"description": description}), flush=True)
    for line in sys.stdin:
        question = json.loads(line)
        for side, model in (("base", base), ("tuned", tuned)):
            for piece in model.stream(question, max_tokens):
                print(json.dumps({"side": side, "text": piece}), flush=True)
            print(json.dumps({"side": side, "end": True}), flush=True)
        print(json.dumps({"done": True}), flush=True)


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
        if sys.argv[1] == "chat":
            chat_child(sys.argv[2], int(sys.argv[3]))
            sys.exit(0)
        result = JOBS[sys.argv[1]](json.load(sys.stdin))
    except Exception as exc:  # the parent raises it again, typed: a user's mistake or a bug (with its traceback)
        if not isinstance(exc, TunewizError):
            import traceback

            traceback.print_exc()
        sys.stdout.flush()
        print(_error_line(exc), file=sys.stderr, flush=True)
        sys.exit(1)
    json.dump(result, sys.stdout)
