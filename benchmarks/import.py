"""Benchmark (not a test): importing big files of pairs, and reading a big project back.

    python benchmarks/import.py                 # 10k, 100k and 200k rows, CSV and ShareGPT chats
    python benchmarks/import.py --rows 200000 --shapes csv

For each size a CSV of real-looking rows (about 230 bytes each: 215k rows are the 50 MB file of
the no-loss issue), and a ShareGPT JSONL of 3-turn conversations with a system prompt, is imported into a new project by `tunewiz import` in its own process, then
`tunewiz status` runs twice (the first reads the journal, the second may use the counts cache).
Printed side by side with a baseline and the targets. The baseline ("plain") is the least any import
does: the same file read by Python's csv/json modules and written as JSON lines, in its own process,
with no checks, duplicates or all-or-nothing writes.
- import: rows per second and the process's peak memory, against 3x the bytes the kept pairs
  take in the journal (the target) and the CSV's size;
- `tunewiz status`: seconds for the first and the second call (target: under 1 s).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("tide", "harbour", "lamp", "keeper", "signal", "north", "rock", "beacon", "storm", "chart", "lens",
         "fog", "horn", "stone", "island", "current", "vessel", "mile", "light", "rotation", "season", "pilot")


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(rows)
    with path.open("w", encoding="utf-8") as out:
        out.write("Question,Answer\n")
        for i in range(rows):
            q = " ".join(rng.choice(WORDS) for _ in range(12))
            a = " ".join(rng.choice(WORDS) for _ in range(22))
            out.write(f"What is the {q} number {i}?,\"The {a}, {i}.\"\n")


def write_sharegpt(path: Path, rows: int) -> None:
    rng = random.Random(rows)
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            turns = [{"from": "system", "value": "You answer questions about lighthouses."}]
            for turn in range(3):
                turns.append({"from": "human", "value": " ".join(rng.choice(WORDS) for _ in range(10)) + f" {i}?"})
                turns.append({"from": "gpt", "value": " ".join(rng.choice(WORDS) for _ in range(18)) + f" {turn}."})
            out.write(json.dumps({"conversations": turns}) + "\n")


WRITERS = {"csv": (write_csv, "pairs.csv"), "sharegpt": (write_sharegpt, "chats.jsonl")}


def tunewiz(*args: str) -> tuple[float, int]:
    """(seconds, peak memory in bytes) of one `tunewiz` command in its own process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tunewiz {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - started, int(done.stdout.strip().splitlines()[-1])


# The baseline: read the rows, write them as JSON lines; print the peak RSS.
_PLAIN = """
import csv, json, resource, sys
source, out = sys.argv[1], sys.argv[2]
with open(source, encoding="utf-8", newline="") as f, open(out, "w", encoding="utf-8") as w:
    if source.endswith(".csv"):
        rows = csv.reader(f)
        next(rows)
        for q, a in rows:
            w.write(json.dumps({"question": q, "answer": a}) + "\\n")
    else:
        for line in f:
            w.write(json.dumps(json.loads(line)) + "\\n")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def plain(source: Path, out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PLAIN, str(source), str(out)], capture_output=True, text=True,
                          check=True)
    return time.perf_counter() - started, int(done.stdout.strip().splitlines()[-1])


# Runs the command in-process and prints its peak RSS (ru_maxrss is in KiB on Linux).
_MEASURED = """
import resource, sys
from tunewiz.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
sys.exit(code)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 200_000])
    parser.add_argument("--shapes", nargs="+", default=list(WRITERS), choices=list(WRITERS))
    args = parser.parse_args()
    print(f"{'shape':>8} {'rows':>8} {'file MB':>7} {'rows/s':>8} {'plain r/s':>9} {'peak MB':>8} "
          f"{'plain MB':>8} {'3x kept MB':>10} {'status 1st s':>12} {'status 2nd s':>12}")
    for shape in args.shapes:
        for rows in args.rows:
            measure(shape, rows)
    return 0


def measure(shape: str, rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write, name = WRITERS[shape]
        data_file = tmp / name
        write(data_file, rows)
        project = tmp / "proj"
        subprocess.run([sys.executable, "-m", "tunewiz", "new", str(project), "-y"], check=True,
                       capture_output=True)
        seconds, peak = tunewiz("import", "-p", str(project), str(data_file))
        plain_s, plain_peak = plain(data_file, tmp / "plain.jsonl")
        kept = (project / "data" / "pairs.jsonl").stat().st_size
        first, _ = tunewiz("status", str(project))
        second, _ = tunewiz("status", str(project))
        print(f"{shape:>8} {rows:>8} {data_file.stat().st_size / 2**20:>7.1f} {rows / seconds:>8.0f} "
              f"{rows / plain_s:>9.0f} {peak / 2**20:>8.0f} {plain_peak / 2**20:>8.0f} {3 * kept / 2**20:>10.0f} "
              f"{first:>12.2f} {second:>12.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
