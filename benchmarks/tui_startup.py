"""Cold start of the wizard to its first screen, and proof that the UI process never imports torch.

    python benchmarks/tui_startup.py   # bare Textual (baseline), welcome screen, a small project, 100k pairs; 5 runs each

Each run is a fresh interpreter (cold imports): it starts the app headless at 80x24 and reports the
wall time since the interpreter started until the first frame of the first screen was rendered (the
frame Textual hands to the terminal; headless, it is rendered and then dropped), and until the screen
settled (the app idle, the parts built after the first frame mounted too). Exits 1 when a median
first frame is over the 0.5 s budget or torch was imported. On a machine busy with other work, wall
time inflates: the CPU time of the process is shown too. Python's byte-code cache is on in the child
(PYTHONDONTWRITEBYTECODE would make every run compile tunewiz's modules, which no installed copy does).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BUDGET_S = 0.5
BIG = 100_000
RUNS = 5
SESSIONS = itertools.count()

CHILD = r"""
import time, sys, os, json, asyncio
t0 = time.perf_counter(); c0 = time.process_time()
project = sys.argv[1] if len(sys.argv) > 1 else None
if project == "--bare-textual":  # the baseline: what any Textual app costs on this machine
    from textual.app import App
    from textual.screen import Screen
    from textual.widgets import Footer, Header, Static
    class BareScreen(Screen):
        def compose(self):
            yield Header(); yield Static("tunewiz"); yield Footer()
    class BareApp(App):
        def on_mount(self):
            self.push_screen(BareScreen())
    app, want = BareApp(), "BareScreen"
else:
    from tunewiz.tui.app import TunewizApp
    app = TunewizApp(project)
    want = "WizardScreen" if project else "WelcomeScreen"
result = {}
display = app._display
def first_frame(screen, renderable):
    # Only a frame Textual hands to the terminal: during its start-up batch it renders and drops them.
    if (renderable is not None and type(screen).__name__ == want and not app._batch_count
            and "first_frame_s" not in result):
        result["first_frame_s"] = time.perf_counter() - t0
        result["cpu_s"] = time.process_time() - c0
    display(screen, renderable)
app._display = first_frame
async def main():
    async with app.run_test(size=(80, 24)) as pilot:
        while "first_frame_s" not in result:
            await pilot.pause(0.005)
        await pilot.pause()  # what is built after the first frame
        result["settled_s"] = time.perf_counter() - t0
        result["torch"] = "torch" in sys.modules or "transformers" in sys.modules
asyncio.run(main())
print(json.dumps(result))
"""


def one_run(project: str | None, env: dict) -> dict:
    start = __import__("time").perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD] + ([project] if project else []), capture_output=True,
                         text=True, env=env, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    # interpreter start-up itself counts too
    result["process_s"] = __import__("time").perf_counter() - start
    return result


BARE_APP = r"""
from textual.app import App
from textual.widgets import Footer, Header, Static
class BareApp(App):
    def compose(self):
        yield Header(); yield Static("bare Textual " + "is up"); yield Footer()  # not the command's own text
BareApp().run()
"""


def tmux_run(command: list[str], cwd: str, env: dict, shows: str) -> float:
    """A command typed into a shell in tmux at 80x24: seconds from pressing Enter until `shows` is on
    the screen. The shell is started and idle first, so tmux's own start is not counted (a user's
    terminal is already open when they type the command)."""
    import shlex
    import time

    name = f"tui-startup-{os.getpid()}-{next(SESSIONS)}"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("XDG_CONFIG_HOME", "PATH", "HOME"))
    for attempt in range(3):  # a tmux server that is just exiting (its last session killed) may refuse one
        started = subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", cwd,
                                  f"env {exports} PS1='ready$ ' sh"], capture_output=True, text=True)
        if started.returncode == 0:
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"tmux new-session failed: {started.stderr.strip()}")

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout

    try:
        deadline = time.perf_counter() + 10
        while "ready$" not in screen():
            if time.perf_counter() > deadline:
                raise SystemExit(f"tmux: the shell did not start; the screen:\n{screen()}")
            time.sleep(0.01)
        start = time.perf_counter()
        subprocess.run(["tmux", "send-keys", "-t", name, shlex.join(command), "Enter"], check=True)
        while time.perf_counter() - start < 30:
            if shows in screen():
                return time.perf_counter() - start
            time.sleep(0.005)
        raise SystemExit(f"tmux: {shows!r} did not appear in 30 s; the screen:\n{screen()}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def main() -> int:
    from tunewiz.dataset import Pair, PairStore
    from tunewiz.project import create_project

    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XDG_CONFIG_HOME=str(Path(tmp) / "config"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        project = create_project(Path(tmp) / "proj")
        big = create_project(Path(tmp) / "big")
        PairStore(big.pairs_path).add(Pair(question=f"What is fact number {i} of the handbook?",
                                           answer=f"Fact {i} says that the value is {i * 7}.", source="bench.csv")
                                      for i in range(BIG))
        for label, target in (("bare Textual", "--bare-textual"), ("welcome screen", None), ("open project", str(project.root)),
                              (f"{BIG // 1000}k pairs", str(big.root))):
            runs = [one_run(target, env) for _ in range(RUNS)]
            first = statistics.median(r["first_frame_s"] for r in runs)
            torch = any(r["torch"] for r in runs)
            cpu = statistics.median(r["cpu_s"] for r in runs)
            settled = statistics.median(r["settled_s"] for r in runs)
            print(f"{label:<15} first frame after {first:.3f} s wall, {cpu:.3f} s CPU; settled {settled:.3f} s "
                  f"(median of {RUNS}; whole process incl. exit {statistics.median(r['process_s'] for r in runs):.3f}"
                  f" s); torch imported: {torch}")
            failed |= (first > BUDGET_S or torch) and target != "--bare-textual"
        if shutil.which("tmux"):  # a real terminal; polling the screen adds a few milliseconds
            tunewiz = str(Path(sys.executable).with_name("tunewiz"))
            for label, command, shows in (
                    ("bare Textual", [sys.executable, "-c", BARE_APP], "bare Textual is up"),
                    ("welcome screen", [tunewiz], "Open a project"),
                    ("open project", [tunewiz, "open", str(project.root)], "Import a file"),
                    (f"{BIG // 1000}k pairs", [tunewiz, "open", str(big.root)], "Import a file")):
                first = statistics.median(tmux_run(command, tmp, env, shows) for _ in range(RUNS))
                print(f"{label:<15} in tmux: on screen after {first:.3f} s (median of {RUNS}, from pressing "
                      f"Enter on the command{'' if command[0] != tunewiz else ': `tunewiz ' + ' '.join(command[1:2]) + '`'})")
                failed |= first > BUDGET_S and label != "bare Textual"
    print("FAIL" if failed else f"OK: under {BUDGET_S} s, no torch")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
