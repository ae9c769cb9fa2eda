"""The smoke test of an export: do the GGUF files answer as the merged model does?

Each GGUF is loaded with llama-cpp-python and asked held-out questions with the
template the export declares; the merged safetensors model answers the same
prompts greedily through transformers. Agreement per file (exact answers and a
character similarity) goes into smoke-test.json and a readable smoke-test.txt.
A 16-bit GGUF should agree almost exactly; a 4-bit one may drift in wording.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Callable

from tunewiz.dataset import Pair
from tunewiz.project import atomic_write_text

SMOKE_JSON = "smoke-test.json"
SMOKE_TXT = "smoke-test.txt"


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, _normal(a), _normal(b)).ratio()


def smoke_test(folder: Path, merged_dir: Path, ggufs: dict[str, Path], pairs: list[Pair], origin: str,
               family: str, system: str, stops: list[str], max_tokens: int = 64,
               on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the comparison and write the two report files into `folder`; return the report."""
    from tunewiz.chat import GGUFAnswerer, HFAnswerer

    say = on_progress or (lambda _msg: None)
    say("Smoke test: the merged model's greedy answers (transformers)...")
    merged = HFAnswerer(merged_dir, family, system)
    reference = [merged.answer(p.question, max_tokens, system=p.system or system) for p in pairs]
    tokenizer = merged.tokenizer if family == "model" else None
    del merged

    files: dict[str, Any] = {}
    for ftype, path in ggufs.items():
        say(f"Smoke test: {path.name} (llama-cpp-python)...")
        model = GGUFAnswerer(path, family, system, stops, tokenizer=tokenizer)
        rows = []
        for pair, merged_answer in zip(pairs, reference):
            answer = model.answer(pair.question, max_tokens, system=pair.system or system)
            rows.append({"pair_id": pair.id, "question": pair.question, "reference": pair.answer,
                         "merged": merged_answer, "gguf": answer,
                         "exact": _normal(answer) == _normal(merged_answer),
                         "similarity": round(similarity(answer, merged_answer), 3)})
        model.close()
        n = len(rows) or 1
        files[path.name] = {
            "type": ftype, "loaded": True,
            "exact_agreement": sum(r["exact"] for r in rows) / n,
            "mean_similarity": round(sum(r["similarity"] for r in rows) / n, 3),
            "answers": rows,
        }
    report = {"questions_from": origin, "template": family, "system_prompt": system, "stops": stops,
              "max_tokens": max_tokens, "files": files}
    atomic_write_text(folder / SMOKE_JSON, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(folder / SMOKE_TXT, readable(report))
    return report


def readable(report: dict[str, Any]) -> str:
    lines = [f"Smoke test: each GGUF against the merged model, greedy, template '{report['template']}', "
             f"{report['questions_from']} questions", ""]
    for name, result in report["files"].items():
        lines.append(f"{name}: {result['exact_agreement']:.0%} identical answers, "
                     f"mean similarity {result['mean_similarity']:.2f}")
    for name, result in report["files"].items():
        lines += ["", f"== {name}"]
        for row in result["answers"]:
            lines += [f"Q: {row['question']}", f"  reference: {row['reference']}",
                      f"  merged:    {row['merged']}", f"  gguf:      {row['gguf']}"
                      f"   [{'same' if row['exact'] else 'similarity %.2f' % row['similarity']}]"]
    return "\n".join(lines) + "\n"
