"""Benchmark (not a test): the generation runner against a bare asyncio + openai loop.

    python benchmarks/generate.py [--latency 0.05] [--levels 1,4,16,64] [--repeat 5]

Both talk to the same local OpenAI-compatible server (tests/generators/fault_server.py,
in its own process, answering every request after `--latency` seconds with pairs
unique to each chunk), in the same run, with the same prompts and response_format.
The bare loop only sends (`client.chat.completions.create`), awaits and json-parses; the runner
also retries, checks quality and dedups, appends and fsyncs every pair and journals every chunk.
Its pairs/min must stay within 5 % of the bare loop's at every concurrency level (the median over
interleaved repeats of the runner's shortfall against the bare run beside it).

The runner sends through the client's low-level `post` (no parameter transform, no response
models). A second baseline, "bare post", is the bare loop through that same transport: the
runner's shortfall against it is what its checks and writes cost, shown beside the goal's figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "generators" / "fault_server.py"
PAIRS_PER_CHUNK = 2
ALLOWED_OVERHEAD = 0.05


def make_project(folder: Path, base_url: str, chunks: int, concurrency: int):
    from tunewiz.project import create_project

    project = create_project(folder, {
        "generator.provider": "custom", "generator.base_url": base_url, "generator.model": "bench",
        "generator.concurrency": concurrency, "generator.pairs_per_chunk": PAIRS_PER_CHUNK,
        "generator.chunk_chars": 200, "generator.chunk_overlap": 0, "generator.documents": ["doc.md"],
        # The stand-in's questions are random words ("Which the harvest valley ... matter in passage X?"):
        # their support score is computed as for any pair, but none would pass a bar on it.
        "generator.min_question_support": 0.0,
        # One request per chunk, as the bare loop sends (more wanted would read each chunk again).
        "generator.num_pairs": chunks * PAIRS_PER_CHUNK})
    # Each paragraph holds what the stand-in's answers say ("Passage X says point 0 is worth 3 units."),
    # so they pass the default support check and every reply's pairs are kept, as the bare loop counts them.
    paragraphs = [f"Passage {i} says point 0 is worth 3 units and point 1 is worth 10 units. " + "~" * 110
                  for i in range(chunks)]
    (folder / "doc.md").write_text("\n\n".join(paragraphs), encoding="utf-8")
    return project


def run_tunewiz(project) -> tuple[float, int, int]:
    """(seconds, pairs, requests) of the runner."""
    from tunewiz.generators.runner import generate_pairs

    started = time.perf_counter()
    summary = generate_pairs(project)
    elapsed = time.perf_counter() - started
    if summary.chunks_failed:
        raise SystemExit(f"the runner failed chunks: {summary.failures}")
    return elapsed, summary.pairs_added, summary.requests


async def _bare(project, low_level: bool) -> tuple[float, int, int]:
    import openai

    from tunewiz.generators import prompts
    from tunewiz.generators.chunking import split_text

    g = project.config.generator
    texts = split_text((project.root / "doc.md").read_text(encoding="utf-8"), g.chunk_chars, g.chunk_overlap)
    schema = prompts.pairs_schema(PAIRS_PER_CHUNK, g.answer_length)
    max_tokens = prompts.pairs_max_tokens(PAIRS_PER_CHUNK, g.answer_length)
    started = time.perf_counter()
    client = openai.AsyncOpenAI(base_url=g.base_url, api_key="none", max_retries=0)
    limit = asyncio.Semaphore(g.concurrency)
    pairs = 0

    response_format = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": False}}

    async def one(text: str) -> None:
        nonlocal pairs
        async with limit:
            messages = prompts.chunk_messages(g, text, PAIRS_PER_CHUNK)
            if low_level:
                body = {"model": g.model, "messages": messages, "max_tokens": max_tokens,
                        "temperature": g.temperature, "response_format": response_format}
                reply = json.loads(await client.post("/chat/completions", body=body, cast_to=bytes))
                content = reply["choices"][0]["message"]["content"]
            else:
                reply = await client.chat.completions.create(
                    model=g.model, messages=messages, max_tokens=max_tokens, temperature=g.temperature,
                    response_format=response_format)
                content = reply.choices[0].message.content
            pairs += len(json.loads(content)["pairs"])

    await asyncio.gather(*(one(t) for t in texts))
    await client.close()
    return time.perf_counter() - started, pairs, len(texts)


def run_bare(project) -> tuple[float, int, int]:
    return asyncio.run(_bare(project, low_level=False))


def run_bare_post(project) -> tuple[float, int, int]:
    return asyncio.run(_bare(project, low_level=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per reply (default 0.05)")
    parser.add_argument("--levels", default="1,4,16,64", help="concurrency levels (default 1,4,16,64)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each (default 5)")
    parser.add_argument("--seconds", type=float, default=4.0, help="ideal seconds per run (sets the chunk count)")
    parser.add_argument("--max-chunks", type=int, default=1500, help="most chunks per run (default 1500)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    server = subprocess.Popen([sys.executable, str(SERVER), "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        base_url = f"http://127.0.0.1:{port}/v1"
        print(f"server: {base_url}, {args.latency * 1000:.0f} ms per reply; {args.repeat} interleaved repeats, "
              "medians shown")
        print(f"{'conc':>4} {'chunks':>6} | {'bare pairs/min':>14} {'bare post':>9} | {'tunewiz pairs/min':>17} | "
              "shortfall against bare: median of the repeats (their range) | against bare post")
        worst = 0.0
        for level in (int(x) for x in args.levels.split(",")):
            # Enough chunks for about `seconds` of ideal run time; capped, since 2 cores saturate.
            chunks = min(args.max_chunks, max(20, int(level * args.seconds / args.latency)))
            rates: dict[str, list[tuple[float, float]]] = {"bare": [], "bare_post": [], "tunewiz": []}
            for attempt in range(args.repeat):
                # Interleaved: each repeat runs all three back to back, so a slow spell of the machine hits all.
                for name, run in (("bare", run_bare), ("bare_post", run_bare_post), ("tunewiz", run_tunewiz)):
                    with tempfile.TemporaryDirectory() as tmp:
                        # A fresh project each time: every chunk is new to the server's client.
                        project = make_project(Path(tmp) / f"{name}{attempt}", base_url, chunks, level)
                        seconds, pairs, requests = run(project)
                    rates[name].append((pairs * 60 / seconds, requests / seconds))
            overheads = sorted(1 - t[0] / b[0] for b, t in zip(rates["bare"], rates["tunewiz"]))
            overhead = statistics.median(overheads)
            costs = sorted(1 - t[0] / b[0] for b, t in zip(rates["bare_post"], rates["tunewiz"]))
            worst = max(worst, overhead)
            bare, bare_post, tunewiz = (statistics.median(r[0] for r in rates[n])
                                        for n in ("bare", "bare_post", "tunewiz"))
            verdict = "ok" if overhead <= ALLOWED_OVERHEAD else "OVER 5 %"
            print(f"{level:>4} {chunks:>6} | {bare:>14.0f} {bare_post:>9.0f} | {tunewiz:>17.0f} | "
                  f"{overhead * 100:+6.1f} % ({overheads[0] * 100:+.1f} to {overheads[-1] * 100:+.1f}) {verdict} | "
                  f"{statistics.median(costs) * 100:+.1f} % ({costs[0] * 100:+.1f} to {costs[-1] * 100:+.1f})")
        return 0 if worst <= ALLOWED_OVERHEAD else 1
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
