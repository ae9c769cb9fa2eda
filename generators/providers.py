"""Where pairs come from: presets of OpenAI-compatible servers, the API key, the connection test.

Every provider is reached the same way, through the `openai` client at a base URL.
The API key is read from an environment variable whose *name* is in the project;
the key itself never goes into the TOML file, a log, an error message or an export
(`redact` scrubs it from any text that might echo it).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Iterator

from tunewiz.errors import TunewizError, redact_urls

# Placeholder key for local servers that want none (the openai client insists on one).
NO_KEY = "no-key-needed"


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    base_url: str
    """Empty: started locally (embedded) or to be given (custom)."""
    model: str
    """Default model name; empty: must be set in generator.model."""
    api_key_env: str
    """Environment variable the key is read from by default; empty: no key needed."""
    structured: str
    """The first structured-output mode tried (see runner.STRUCTURED_MODES)."""
    price_in_per_mtok: float | None = None
    price_out_per_mtok: float | None = None
    """Prices of the default model, for the cost estimate; None: unknown."""


PRESETS: dict[str, Preset] = {p.name: p for p in (
    # llama-cpp-python's server takes a JSON schema as response_format
    # {"type": "json_object", "schema": ...} and enforces it with a grammar.
    Preset("embedded", "Embedded (offline, llama-cpp-python + a local GGUF)", "", "", "",
           "json_object_schema", 0.0, 0.0),
    Preset("openai", "OpenAI", "https://api.openai.com/v1", "gpt-4o-mini", "OPENAI_API_KEY",
           "json_schema", 0.15, 0.60),
    Preset("ollama", "Ollama", "http://localhost:11434/v1", "llama3.2", "", "json_schema", 0.0, 0.0),
    Preset("vllm", "vLLM", "http://localhost:8000/v1", "", "", "json_schema", 0.0, 0.0),
    Preset("llamacpp", "llama.cpp server (llama-server)", "http://localhost:8080/v1", "local", "",
           "json_schema", 0.0, 0.0),
    Preset("lmstudio", "LM Studio", "http://localhost:1234/v1", "", "", "json_schema", 0.0, 0.0),
    Preset("custom", "Any OpenAI-compatible API", "", "", "", "json_schema"),
)}


@dataclass(frozen=True)
class Endpoint:
    """A resolved server to talk to. `api_key` is held in memory only."""

    base_url: str
    model: str
    api_key: str
    preset: Preset

    def __repr__(self) -> str:  # never print the key
        return f"Endpoint(base_url={self.base_url!r}, model={self.model!r}, preset={self.preset.name!r})"

    def redact(self, text: str) -> str:
        return redact(text, self.api_key)


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` and the user-info of URLs replaced (secrets shorter
    than 4 are left: noise)."""
    if secret and secret != NO_KEY and len(secret) >= 4:
        text = text.replace(secret, "***")
    return redact_urls(text)


def preset_of(project) -> Preset:
    return PRESETS[project.config.generator.provider]


def embedded_gguf_path(project):
    """The GGUF file the embedded provider serves."""
    from tunewiz.models import smollm2_gguf_path

    g = project.config.generator
    if g.embedded_gguf:
        path = project.path(g.embedded_gguf)
        if not path.is_file():
            raise TunewizError(f"generator.embedded_gguf: {path} does not exist")
        return path
    return smollm2_gguf_path()


def read_api_key(project) -> str:
    g = project.config.generator
    preset = preset_of(project)
    env = g.api_key_env or preset.api_key_env
    if not env:
        return NO_KEY
    key = os.environ.get(env, "").strip()
    if not key:
        raise TunewizError(f"generator.api_key_env: the environment variable {env} is not set; "
                           f"export {env}=<your key> (tunewiz reads the key from there and never stores it)")
    return key


def resolve_endpoint(project, *, need_model: bool = True) -> tuple[str, str, str]:
    """(base_url, model, api_key) of the project's provider.

    For the embedded provider the base URL is only known once its server runs:
    base_url is "" and model is the GGUF path; `open_endpoint` starts the server.
    """
    g = project.config.generator
    preset = preset_of(project)
    if preset.name == "embedded":
        return "", str(embedded_gguf_path(project)), NO_KEY
    base_url = (g.base_url or preset.base_url).rstrip("/")
    if not base_url:
        raise TunewizError("generator.base_url: the custom provider needs a base URL, "
                           "e.g. `tunewiz config generator.base_url http://host:port/v1`")
    if not base_url.startswith(("http://", "https://")):
        raise TunewizError(f"generator.base_url must start with http:// or https://, got {redact_urls(base_url)!r}")
    model = g.model or preset.model
    if not model and need_model:
        raise TunewizError(f"generator.model: {preset.label} has no default model; set one with "
                           "`tunewiz config generator.model NAME` (`tunewiz providers --test` lists "
                           "the models the server offers)")
    return base_url, model, read_api_key(project)


@contextlib.contextmanager
def open_endpoint(project, *, need_model: bool = True, log_path=None) -> Iterator[Endpoint]:
    """The project's endpoint, ready to use; for the embedded provider its server runs meanwhile."""
    preset = preset_of(project)
    base_url, model, api_key = resolve_endpoint(project, need_model=need_model)
    if preset.name != "embedded":
        yield Endpoint(base_url, model, api_key, preset)
        return
    from tunewiz.generators.embedded import EmbeddedServer

    if log_path is None and (project.root / "data").is_dir():
        log_path = project.root / "data" / "embedded-server.log"
    with EmbeddedServer(model, log_path=log_path) as server:
        yield Endpoint(server.base_url, server.model, api_key, preset)


def describe_error(exc: BaseException, endpoint: Endpoint) -> str:
    """A one-line, key-free description of a failed request."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        text = "timed out"
    elif isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        text = f"connection failed ({type(cause).__name__ if cause else 'no answer'})"
    elif isinstance(exc, openai.APIStatusError):
        body = exc.message if isinstance(exc.message, str) else str(exc.body)
        text = f"HTTP {exc.status_code}: {' '.join(body.split())[:300]}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return endpoint.redact(text)


def test_connection(project) -> str:
    """Reach the provider, list its models and ask for a few tokens; a message, or TunewizError."""
    import openai

    g = project.config.generator
    started = time.monotonic()
    with open_endpoint(project, need_model=False) as endpoint:
        client = openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key,
                               timeout=min(g.timeout_s, 60.0), max_retries=0)
        where = "the embedded server" if endpoint.preset.name == "embedded" else redact_urls(endpoint.base_url)
        try:
            served = [m.id for m in client.models.list().data]
        except openai.AuthenticationError as exc:
            raise TunewizError(f"{where} rejected the API key from "
                               f"${g.api_key_env or endpoint.preset.api_key_env}: "
                               f"{describe_error(exc, endpoint)}") from None
        except openai.NotFoundError:
            served = []  # some servers have no /models; the chat request below still tells
        except openai.APIError as exc:
            raise TunewizError(f"cannot reach {where}: {describe_error(exc, endpoint)}") from None
        model = endpoint.model or (served[0] if len(served) == 1 else "")
        if not model:
            listing = ", ".join(served[:20]) or "none listed"
            raise TunewizError(f"generator.model is not set; {where} serves: {listing}")
        asked = time.monotonic()
        try:
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Reply with the word OK."}],
                max_tokens=5, temperature=0)
        except openai.APIError as exc:
            raise TunewizError(f"{where} did not answer a chat request for model {model}: "
                               f"{describe_error(exc, endpoint)}") from None
        choices = getattr(reply, "choices", None)  # a reply that is not the API's (an HTML page) has none
        if not choices:
            raise TunewizError(f"{where} answered a chat request for model {model} with no choices "
                               f"({type(reply).__name__}): is it an OpenAI-compatible API?")
        answer = " ".join((choices[0].message.content or "").split())[:40]
        if "<think>" in answer and "</think>" not in answer:
            answer += " ... (still thinking at the 5-token limit: a reasoning model; it answers, given more)"
        note = ""
        if served and model not in served and endpoint.preset.name != "embedded":
            note = f" (note: {model} is not among the {len(served)} models it lists)"
        return (f"{where}: OK, model {model} answered {answer!r} in "
                f"{time.monotonic() - asked:.1f} s ({time.monotonic() - started:.1f} s in all){note}")
