"""What the terminal front ends (the CLI and the demo) print while work goes on: progress lines.

A front end of its own room: `tunewiz.cli` and `tunewiz.demo` both use it, and it uses only
the services and the foundation (see tests/core/test_layers.py).
"""

from __future__ import annotations

import shutil
import sys
import time

from tunewiz.words import counted


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
        return (f"[{'#' * filled}{'.' * (width - filled)}] {event.unit}s {event.chunks_done} done, "
                f"{event.chunks_failed} failed, {event.chunks_left} left | {counted(event.pairs_added, 'pair')} "
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
    from tunewiz.runs import state_said
    from tunewiz.training.launch import stop_run

    stopping = False
    last = ""
    tty = sys.stdout.isatty()
    printed_at, printed_for = 0.0, None
    while True:
        try:
            state = run.state()
            status = run.read_status()
            line = _progress_line(run, status)
            if tty and line != last:
                # One terminal row: a longer line wraps, and the carriage return goes back to its last row only.
                width = shutil.get_terminal_size((100, 20)).columns - 1
                sys.stdout.write("\r" + line[:width].ljust(min(len(last), width)))
                sys.stdout.flush()
                last = line[:width]
            elif not tty and line != last and ((status.state, status.message) != printed_for
                                               or time.monotonic() - printed_at >= 10):
                # A log or a pipe: whole lines, every 10 s and on each change of state or message (carriage
                # returns would leave one unreadable line in a file).
                print(line, flush=True)
                last, printed_at, printed_for = line, time.monotonic(), (status.state, status.message)
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
    state = run.state()
    print(("\n" if tty else "") + f"Run {run.id}: {state_said(state, status.message)}")
    if state == "died":
        print(f"The training process ended without saying why; see {run.log_path}")
    return 0 if state in ("finished", "stopped") else 1


def _progress_line(run, status) -> str:
    """The bar, loss, speed, time left and the latest recall check of the run."""
    from tunewiz.runs import duration, read_jsonl, recall_figure, seconds_left

    trains: list[dict] = []
    val = recall = None
    for record in read_jsonl(run.metrics_path):
        if record.get("type") == "train":
            trains.append(record)
        elif record.get("type") == "eval":
            val = record
        elif record.get("type") == "recall":
            recall = record
    total = status.max_steps or 0
    # status.json is written at most once a second, metrics.jsonl every step: the step of the loss shown.
    step = max(status.step, int(trains[-1]["step"]) if trains else 0)
    width = 30
    filled = int(width * step / total) if total else 0
    bar = "#" * filled + "-" * (width - filled)
    text = f"[{bar}] {step}/{total or '?'} {status.state}"
    if trains:
        text += f"  loss {trains[-1]['loss']:.4f}"
        if trains[-1].get("tokens_per_s"):
            text += f"  {trains[-1]['tokens_per_s']:.0f} tok/s"
    if val:
        text += f"  val {val['val_loss']:.4f}"
    if recall_figure(recall):
        text += f"  {recall_figure(recall)}"
    if status.state == "running":
        left = seconds_left(trains, total, status.resumed)
        if left is not None:
            text += f"  ETA {duration(left)}"
    if status.state == "starting" and status.message:
        text += f"  ({status.message})"
    return text
