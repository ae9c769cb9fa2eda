"""Asking an OpenAI-compatible endpoint: one request, and one question with its retries.

A JSON reply is asked for in the best structured-output mode the server takes (stepping
down when it refuses one); timeouts, dropped connections, 429 and 5xx are retried with
exponential backoff and jitter (honouring Retry-After), malformed replies at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import socket
import time
from typing import Any, Callable

from tunewiz.errors import FatalRequestError, redact_urls
from tunewiz.generators import prompts
from tunewiz.generators.providers import Endpoint, describe_error
from tunewiz.words import counted

# How a JSON reply is asked for, best first. A server that refuses one (HTTP 400/422/500
# naming response_format) gets the next; tolerant parsing reads whatever comes back.
STRUCTURED_MODES = ("json_schema", "json_object_schema", "json_object", "none")

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 300.0


class ChunkFailed(Exception):
    """A work item gave up; the message is the reason recorded for it."""


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with jitter before retry number `attempt` (1, 2, ...)."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def retry_after_s(exc: Any) -> float | None:
    """The wait a 429/503 asks for in its Retry-After (seconds or an HTTP date), if any."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after-ms")
    if value:
        try:
            return min(RETRY_AFTER_CAP_S, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return min(RETRY_AFTER_CAP_S, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(RETRY_AFTER_CAP_S, max(0.0, when.timestamp() - time.time()))


def _refuses_response_format(exc: Any) -> bool:
    if getattr(exc, "status_code", 0) not in (400, 415, 422, 500, 501):
        return False
    text = f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}".lower()
    return any(word in text for word in ("response_format", "json_schema", "response format"))


def _cannot_connect(exc: BaseException) -> bool:
    """Whether a request failed because nothing accepts connections there (refused, or no such host),
    not because one connection broke: read down the chain of causes to the socket's own error."""
    for _ in range(8):
        if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
            return True
        following = exc.__cause__ or exc.__context__
        if following is None:
            return False
        exc = following
    return False


class Requester:
    """The endpoint of one generation run, asked by all its workers; counts requests, retries and
    tokens in `summary` (a GenerationSummary) and says a structured-mode step-down through `say`."""

    def __init__(self, g, summary, say: Callable[[str], None]) -> None:
        self.g, self.summary, self.say = g, summary, say
        self.endpoint: Endpoint | None = None
        self.client = None
        self.mode = STRUCTURED_MODES[0]
        self.reached = False
        """Whether the server has answered once in this run: until then a refused connection is no blip."""

    def connect(self, endpoint: Endpoint) -> None:
        import openai

        self.endpoint = endpoint
        self.mode = endpoint.preset.structured
        # The client's own timeout is a backstop; asyncio.wait_for enforces timeout_s.
        self.client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key,
                                         timeout=self.g.timeout_s + 5, max_retries=0)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def _request(self, messages, schema, max_tokens: int, temperature: float) -> tuple[str | None, str | None]:
        import openai

        while True:
            mode = self.mode
            extra: dict[str, Any] = {}
            if mode == "json_schema":
                extra["response_format"] = {"type": "json_schema",
                                            "json_schema": {"name": "reply", "schema": schema, "strict": False}}
            elif mode == "json_object_schema":
                extra["response_format"] = {"type": "json_object", "schema": schema}
            elif mode == "json_object":
                extra["response_format"] = {"type": "json_object"}
            self.summary.requests += 1
            body = {"model": self.endpoint.model, "messages": messages, "max_tokens": max_tokens,
                    "temperature": temperature, **extra}
            try:
                # The client's low-level post: its auth, headers, status errors and timeout, without
                # the request-parameter transform and the response models of `chat.completions.create`,
                # which cost a CPU-bound client ~15 % of its time per request (benchmarks/generate.py).
                text = await asyncio.wait_for(self.client.post("/chat/completions", body=body, cast_to=bytes),
                                              timeout=self.g.timeout_s)
            except openai.APIStatusError as exc:
                if mode != "none" and _refuses_response_format(exc):
                    if self.mode == mode:  # another request may have stepped down already
                        self.mode = STRUCTURED_MODES[STRUCTURED_MODES.index(mode) + 1]
                        self.say(f"the server refused response_format {mode}; using {self.mode} instead")
                    continue
                raise
            return self._read_reply(text)

    def _read_reply(self, text: bytes) -> tuple[str | None, str | None]:
        """(content, finish_reason) of a chat completion's JSON; ValueError for a body that is not one.
        Bytes, for json to read the encoding (a UTF-8 byte-order mark too, which a str keeps)."""
        try:
            reply = json.loads(text)
            usage = reply.get("usage") or {}
            choice = reply["choices"][0]
            content, finish = choice["message"].get("content"), choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise ValueError(f"not a chat completion: {text[:200]!r}") from None
        if content is not None and not isinstance(content, str):
            raise ValueError(f"not a chat completion: content is {type(content).__name__}")
        if isinstance(usage, dict):
            self.summary.tokens_in += int(usage.get("prompt_tokens") or 0)
            self.summary.tokens_out += int(usage.get("completion_tokens") or 0)
        return content, finish

    async def ask(self, messages, schema, max_tokens: int, parse: Callable[[str | None], Any],
                  temperature: float | None = None) -> Any:
        """The parsed reply to one question, retried as needed; ChunkFailed when it never comes."""
        import openai

        temperature = self.g.temperature if temperature is None else temperature
        attempts = self.g.max_retries + 1
        delay = 0.0
        reason = ""
        for attempt in range(attempts):
            if attempt:
                self.summary.retries += 1
                if delay > 0:
                    await asyncio.sleep(delay)
            delay = backoff_delay(attempt + 1)
            try:
                content, finish = await self._request(messages, schema, max_tokens, temperature)
                self.reached = True
            except openai.APIStatusError as exc:
                self.reached = True
                reason = describe_error(exc, self.endpoint)
                if exc.status_code in (401, 403):
                    raise FatalRequestError(f"the provider refused the request ({reason}); check the "
                                            "API key and generator.api_key_env") from None
                if exc.status_code == 404:
                    raise FatalRequestError(f"{redact_urls(self.endpoint.base_url)} has no model "
                                            f"{self.endpoint.model!r} or no chat endpoint ({reason}); "
                                            "check generator.model and generator.base_url") from None
                if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                    wait = retry_after_s(exc)
                    if wait is not None:
                        delay = wait + random.uniform(0, 0.1 * wait + 0.05)
                    continue
                raise ChunkFailed(reason) from None  # any other 4xx: asking again changes nothing
            except (openai.APIError, asyncio.TimeoutError, ValueError, TypeError,
                    AttributeError, IndexError) as exc:
                # Timeouts, dropped connections, bodies that are not an API reply.
                reason = ("timed out" if isinstance(exc, asyncio.TimeoutError)
                          else describe_error(exc, self.endpoint))
                if _cannot_connect(exc) and attempt and not self.reached:
                    # Nothing has answered at all: every chunk would wait out its retries for nothing
                    # (a run of 1,000 chunks, an hour), and end with advice about models.
                    raise FatalRequestError(f"cannot connect to {redact_urls(self.endpoint.base_url)} ({reason}): "
                                            "start the server, or check generator.base_url "
                                            "(`tunewiz providers --test`)") from None
                continue
            try:
                return parse(content)
            except prompts.ReplyError as exc:
                reason = f"malformed reply: {exc}"
                if finish == "length":
                    reason += " (cut off at max_tokens)"
                delay = 0.0  # not the server's load: ask again at once
        raise ChunkFailed(f"{reason} (after {counted(attempts, 'attempt')})")
