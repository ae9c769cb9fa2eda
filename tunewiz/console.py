"""What the terminal front ends (the CLI and the demo) print while work goes on: progress lines.

A front end of its own room: `tunewiz.cli` and `tunewiz.demo` both use it, and it uses only
the services and the foundation (see tests/core/test_layers.py).
"""

from __future__ import annotations

import shutil
import sys
import time


class ProgressBar:
    """One line redrawn in place on a terminal; a line every few seconds elsewhere (logs, pipes)."""

    def __init__(self, stream, every_s: float = 5.0):
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = every_s
        self.last_print = 0.0
        self.drawn = False

    def note(self, text: str) -> None:
        self._clear()
        print(text, file=self.stream, flush=True)

    def update(self, event) -> None:
        if event.message:
            self.note(event.message)
        if event.kind not in ("started", "progress"):
            return
        line = self.render(event)
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + line[:width].ljust(width))
            self.stream.flush()
            self.drawn = True
        elif event.kind == "started" or time.monotonic() - self.last_print >= self.every_s:
            print(line, file=self.stream, flush=True)
            self.last_print = time.monotonic()

    @staticmethod
    def render(event, width: int = 24) -> str:
        finished = event.chunks_done + event.chunks_failed
        filled = int(width * finished / event.chunks_total) if event.chunks_total else 0
        cost = "" if event.cost is None else f" ${event.cost:.4f}"
        dropped = sum(event.dropped.values())
        return (f"[{'#' * filled}{'.' * (width - filled)}] chunks {event.chunks_done} done, "
                f"{event.chunks_failed} failed, {event.chunks_left} left | {event.pairs_added} pairs "
                f"({event.pairs_per_min:.1f}/min), {dropped} dropped | tokens {event.tokens_in}/"
                f"{event.tokens_out}{cost}")

    def _clear(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((100, 20)).columns - 1) + "\r")
            self.drawn = False

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def follow_with_progress(run) -> int:
    """A progress bar from status.json and metrics.jsonl; Ctrl-C stops the run gracefully."""
    from tunewiz.training.launch import stop_run

    stopping = False
    last = ""
    while True:
        try:
            state = run.state()
            status = run.read_status()
            line = _progress_line(run, status)
            if line != last:
                sys.stdout.write("\r" + line.ljust(len(last)))
                sys.stdout.flush()
                last = line
            if state not in ("starting", "running", "stopping"):
                break
            time.sleep(0.5)
        except KeyboardInterrupt:
            if stopping:
                print("\nStill stopping; the run goes on saving its checkpoint in the background.")
                return 130
            stopping = True
            print("\nStopping: the run saves a checkpoint, then exits (Ctrl-C again to leave it to finish "
                  "in the background)...")
            try:
                stop_run(run)
            except Exception:  # it ended between the check and the request
                pass
    status = run.read_status()
    print(f"\nRun {run.id}: {run.state()}" + (f": {status.message}" if status.message else ""))
    if run.state() == "died":
        print(f"The training process ended without saying why; see {run.log_path}")
    return 0 if run.state() in ("finished", "stopped") else 1


def _progress_line(run, status) -> str:
    from tunewiz.runs import read_jsonl

    train = val = None
    for record in read_jsonl(run.metrics_path):
        if record.get("type") == "train":
            train = record
        elif record.get("type") == "eval":
            val = record
    total = status.max_steps or 0
    width = 30
    filled = int(width * status.step / total) if total else 0
    bar = "#" * filled + "-" * (width - filled)
    text = f"[{bar}] {status.step}/{total or '?'} {status.state}"
    if train:
        text += f"  loss {train['loss']:.4f}"
        if train.get("tokens_per_s"):
            text += f"  {train['tokens_per_s']:.0f} tok/s"
    if val:
        text += f"  val {val['val_loss']:.4f}"
    if status.state == "starting" and status.message:
        text += f"  ({status.message})"
    return text
