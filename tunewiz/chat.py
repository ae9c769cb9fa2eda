"""Asking a model questions with the template it was trained with.

Two answerers, one interface (`answer(question) -> str`, greedy; `stream(question)` yields the
same answer in pieces as they are generated):
- GGUFAnswerer: an exported GGUF through llama-cpp-python (what llama.cpp/Ollama run);
- HFAnswerer: a Hugging Face folder through transformers, optionally with a LoRA
  checkpoint on top (its adapter can be switched off to ask the base model).

Each question is a fresh single-turn chat, as the model was trained on single
question/answer pairs. Sample answers (samples.py), the smoke test and
`tunewiz chat` all use these, so they all render prompts the same way.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tunewiz.templates import cut_at_stops, render_prompt

DEFAULT_MAX_TOKENS = 128


def cut_stream(pieces: Iterable[str], stops: list[str]) -> Iterator[str]:
    """`pieces` of generated text as they come, up to the first stop string: together the same text that
    cut_at_stops gives for the whole. The last characters, which could begin a stop string, wait until
    they cannot."""
    hold = max((len(stop) for stop in stops if stop), default=1) - 1
    text, sent = "", 0
    for piece in pieces:
        text += piece
        body = text.lstrip()
        if any(stop and stop in body for stop in stops):
            final = cut_at_stops(body, stops)
            if len(final) > sent:
                yield final[sent:]
            return
        shown = body[:max(0, len(body) - hold)].rstrip()
        if len(shown) > sent:
            yield shown[sent:]
            sent = len(shown)
    final = text.strip()
    if len(final) > sent:
        yield final[sent:]


class HFAnswerer:
    """transformers, greedy; `adapters` maps names to LoRA checkpoint folders."""

    def __init__(self, model_dir: Path, family: str, system: str = "",
                 adapters: dict[str, Path] | None = None):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        from tunewiz.templates import end_of_turn, stop_token_ids

        config = AutoConfig.from_pretrained(model_dir)
        if hasattr(config, "quantization_config"):  # a 'gguf' provenance note on a dequantized base
            del config.quantization_config
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        from tunewiz.models import quiet_model_loading

        quiet_model_loading()
        self.model: Any = AutoModelForCausalLM.from_pretrained(model_dir, config=config, dtype=torch.float32)
        self.family, self.system = family, system
        self.stop_ids = stop_token_ids(family, self.tokenizer)
        self.stops = [end_of_turn(family, self.tokenizer)]
        if adapters:
            from peft import PeftModel

            names = list(adapters)
            self.model = PeftModel.from_pretrained(self.model, adapters[names[0]], adapter_name=names[0])
            for name in names[1:]:
                self.model.load_adapter(adapters[name], adapter_name=name)
        self.model.eval()

    def use_adapter(self, name: str) -> None:
        self.model.set_adapter(name)

    def answer(self, question: str, max_tokens: int = DEFAULT_MAX_TOKENS, system: str | None = None,
               base: bool = False) -> str:
        """Greedy answer; base=True switches the LoRA adapter off for this answer."""
        ids, off = self._prepare(question, system, base)
        with off, self.torch.no_grad():
            out = self.model.generate(**self._generate_args(ids, max_tokens))
        text = self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        return cut_at_stops(text, self.stops)

    def stream(self, question: str, max_tokens: int = DEFAULT_MAX_TOKENS, system: str | None = None,
               base: bool = False) -> Iterator[str]:
        """The greedy answer in pieces as transformers generates it (generate runs in a thread)."""
        from transformers import TextIteratorStreamer

        ids, off = self._prepare(question, system, base)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failed: list[BaseException] = []

        def generate() -> None:
            try:
                with off, self.torch.no_grad():
                    self.model.generate(**self._generate_args(ids, max_tokens), streamer=streamer)
            except BaseException as exc:  # said in the caller's thread, after the pieces so far
                failed.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        yield from cut_stream(streamer, self.stops)
        worker.join()
        if failed:
            raise failed[0]

    def _prepare(self, question: str, system: str | None, base: bool):
        prompt = render_prompt(self.family, question, self.system if system is None else system, self.tokenizer)
        ids = self.tokenizer(prompt, add_special_tokens=True, return_tensors="pt")["input_ids"]
        off = self.model.disable_adapter() if base and hasattr(self.model, "disable_adapter") \
            else contextlib.nullcontext()
        return ids, off

    def _generate_args(self, ids, max_tokens: int) -> dict[str, Any]:
        return {"input_ids": ids, "attention_mask": self.torch.ones_like(ids), "max_new_tokens": max_tokens,
                "do_sample": False, "eos_token_id": self.stop_ids,
                "pad_token_id": self.tokenizer.pad_token_id or self.stop_ids[0]}


class GGUFAnswerer:
    """llama-cpp-python on a GGUF file, greedy, with the training template rendered as text.

    `tokenizer` is needed only for the 'model' family (the base model's own Jinja template)."""

    def __init__(self, gguf: Path, family: str, system: str = "", stops: list[str] | None = None,
                 tokenizer: Any | None = None, n_ctx: int = 2048):
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(gguf), n_ctx=n_ctx, verbose=False, seed=0)
        self.family, self.system, self.tokenizer = family, system, tokenizer
        self.stops = list(stops or [])

    def answer(self, question: str, max_tokens: int = DEFAULT_MAX_TOKENS, system: str | None = None) -> str:
        prompt = render_prompt(self.family, question, self.system if system is None else system, self.tokenizer)
        out = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1,
                                         stop=self.stops or None)
        return cut_at_stops(out["choices"][0]["text"], self.stops)

    def stream(self, question: str, max_tokens: int = DEFAULT_MAX_TOKENS, system: str | None = None) -> Iterator[str]:
        """The same greedy answer in pieces as llama.cpp generates it."""
        prompt = render_prompt(self.family, question, self.system if system is None else system, self.tokenizer)
        chunks = self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1,
                                            stop=self.stops or None, stream=True)
        yield from cut_stream((chunk["choices"][0]["text"] for chunk in chunks), self.stops)

    def close(self) -> None:
        self.llm.close()


# ---------------------------------------------------------------- `tunewiz chat`

def open_chat(project, compare: bool = False, gguf: Path | None = None):
    """(fine-tuned answerer, base answerer or None, description) for a project.

    The fine-tuned side is the newest export's GGUF (or `gguf`), else the picked
    checkpoint through transformers; the base side is the run's base model."""
    from tunewiz.checkpoints import picked_checkpoint, read_run_config
    from tunewiz.templates import template_stops

    report, checkpoint = picked_checkpoint(project)
    cfg = read_run_config(report.run)
    gguf = gguf or newest_export_gguf(project)
    base = None
    if gguf is not None:
        tokenizer = None
        if cfg.family == "model":
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(cfg.base_path)
        tuned: Any = GGUFAnswerer(gguf, cfg.family, cfg.system_prompt, template_stops(cfg.family, tokenizer),
                                  tokenizer=tokenizer)
        where = f"fine-tuned: {gguf}"
        if compare:
            base = HFAnswerer(cfg.base_path, cfg.family, cfg.system_prompt)
    else:
        hf = HFAnswerer(cfg.base_path, cfg.family, cfg.system_prompt, adapters={"tuned": checkpoint.path})
        tuned = hf
        where = f"fine-tuned: {checkpoint.path} (no GGUF export yet; through transformers)"
        if compare:
            base = _BaseView(hf)
    if compare:
        where += f"; base: {cfg.base_path}"
    return tuned, base, where


class _BaseView:
    """The base model's answers from an HFAnswerer whose adapter is switched off."""

    def __init__(self, hf: HFAnswerer):
        self.hf = hf

    def answer(self, question: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> str:
        return self.hf.answer(question, max_tokens, base=True)

    def stream(self, question: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> Iterator[str]:
        return self.hf.stream(question, max_tokens, base=True)


def newest_export_gguf(project) -> Path | None:
    """The main GGUF of the newest export (its manifest says which file: never the adapter)."""
    from tunewiz.exports import list_exports

    return next((m.main_gguf for m in list_exports(project.exports_dir) if m.main_gguf), None)


def chat_loop(tuned, base, ask: Callable[[str], str] = input, write: Callable[[str], None] | None = None,
              max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
    """Read questions until EOF or an empty line; print the fine-tuned (and base) answers as they come."""
    write = write or (lambda text: print(text, end="", flush=True))
    while True:
        try:
            question = ask("you> ").strip()
        except EOFError:
            return
        if not question:
            return
        sides = [("base>       ", base), ("fine-tuned> ", tuned)] if base is not None else [("model> ", tuned)]
        for label, model in sides:
            write(label)
            for piece in model.stream(question, max_tokens):
                write(piece)
            write("\n")
