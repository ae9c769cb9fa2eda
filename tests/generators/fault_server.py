"""A small OpenAI-compatible HTTP server whose faults are scripted from the prompt.

A chunk of text containing `[[faults:429,500,hang]]` gets a 429 (with Retry-After)
on its first request, a 500 on its second, a hang past the client's timeout on its
third and a good reply after that. Faults: 429, 500, 503, hang, drop (connection
closed without a reply), malformed (prose, no JSON), truncated (JSON cut short),
badbody (an HTTP body that is not a complete API reply), bom (a good reply after a
UTF-8 byte-order mark), empty, echo (answers
repeat the question), always-malformed (every reply). Good replies hold the number
of pairs the request's JSON schema asks for, with questions unique to the chunk.

Used by the tests (in a thread, `FaultServer().start()`) and by
benchmarks/generate.py (as a process: `python fault_server.py --latency 0.05`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import threading
from collections import Counter

_FAULTS = re.compile(r"\[\[faults:([a-z0-9,\-]+)\]\]")


class FaultServer:
    def __init__(self, *, latency_s: float = 0.0, hang_s: float = 5.0, retry_after: str = "1",
                 api_key: str | None = None, json_schema: bool = True, host: str = "127.0.0.1", port: int = 0,
                 no_choices: bool = False):
        self.no_choices = no_choices
        """Chat replies with an empty `choices` list (as some proxies send on an upstream error)."""
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.api_key = api_key
        self.json_schema = json_schema
        self.host, self.port = host, port
        self.attempts: Counter[str] = Counter()
        self.outcomes: list[tuple[str, str]] = []
        self.formats: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- running

    async def serve(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> "FaultServer":
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:  # connections still hanging
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if not await self._handle(method, path, headers, body, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            return  # cancelled: the server is stopping (3.11's stream callback trips on a cancelled task)
        finally:
            writer.close()

    @staticmethod
    def _send(writer, status: int, payload, extra_headers: dict | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "X")
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
                f"Content-Length: {len(data)}", "Connection: keep-alive"]
        head += [f"{k}: {v}" for k, v in (extra_headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)

    async def _handle(self, method, path, headers, body, writer) -> bool:
        """Answer one request; False to close the connection."""
        if method == "GET" and path.endswith("/models"):
            self._send(writer, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            await writer.drain()
            return True
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            # A careless server that echoes the credentials it got.
            self._send(writer, 401, {"error": {"message": f"invalid credentials: {headers.get('authorization')}"}})
            await writer.drain()
            return True
        request = json.loads(body)
        response_format = request.get("response_format") or {}
        kind = response_format.get("type", "none")
        if kind == "json_object" and "schema" in response_format:
            kind = "json_object_schema"
        if kind == "json_schema" and not self.json_schema:
            self._send(writer, 400, {"error": {"message": "response_format json_schema is not supported"}})
            await writer.drain()
            return True
        self.formats[kind] += 1
        user = request["messages"][-1]["content"]
        chunk = hashlib.sha1(user.encode()).hexdigest()[:8]
        attempt = self.attempts[chunk]
        self.attempts[chunk] += 1
        found = _FAULTS.search(user)
        faults = found.group(1).split(",") if found else []
        fault = faults[attempt] if attempt < len(faults) else "ok"
        if "always-malformed" in faults:
            fault = "malformed"
        self.outcomes.append((chunk, fault))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if fault in ("429", "500", "503"):
            extra = {"Retry-After": self.retry_after} if fault == "429" else None
            self._send(writer, int(fault), {"error": {"message": f"injected {fault}"}}, extra)
        elif fault == "hang":
            await asyncio.sleep(self.hang_s)
            return False
        elif fault == "drop":
            return False
        elif fault == "badbody":
            self._send(writer, 200, None, raw=b'{"id": "x", "object": "chat.completion", "choices": [{"ind')
        else:
            content = self._content(fault, user, chunk, response_format)
            reply = {"id": f"chatcmpl-{chunk}", "object": "chat.completion", "created": 0,
                     "model": request.get("model", "fake-model"),
                     "choices": [] if self.no_choices else [{"index": 0, "message": {
                         "role": "assistant", "content": content}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": len(user) // 4, "completion_tokens": len(content) // 4,
                               "total_tokens": len(user) // 4 + len(content) // 4}}
            # bom: a good reply that starts with a UTF-8 byte-order mark, as some Windows servers send
            self._send(writer, 200, reply, raw=b"\xef\xbb\xbf" + json.dumps(reply).encode() if fault == "bom" else None)
        await writer.drain()
        return True

    @staticmethod
    def _content(fault: str, user: str, chunk: str, response_format: dict) -> str:
        if fault == "malformed":
            return "Sure! Here are some questions and answers about the text."
        if fault == "truncated":
            return '{"pairs": [{"question": "What does the passage say?", "answer": "It sa'
        if fault == "empty":
            return ""
        if user.startswith("Rate this"):
            return json.dumps({"score": 8})
        if user.startswith("Rewrite the question"):  # one fixed rewording of the question asked
            asked = re.search(r'Question: "(.*)"', user).group(1).rstrip("?")
            return json.dumps({"question": f"Could you tell me: {asked[:1].lower()}{asked[1:]}?"})
        wanted = re.search(r"(?:List|exactly|up to) (\d+)", user)  # how many the prompt asks for
        n = int(wanted.group(1)) if wanted else 2
        if user.startswith("List"):
            return json.dumps({"subtopics": [f"aspect {i} of the matter" for i in range(n)]})
        if fault == "echo":
            pairs = [{"question": f"What is point {i} of {chunk}?", "answer": f"What is point {i} of {chunk}?"}
                     for i in range(n)]
        else:
            pairs = [{"question": _question(chunk, i),
                      "answer": f"Passage {chunk} says point {i} is worth {i * 7 + 3} units."} for i in range(n)]
        return json.dumps({"pairs": pairs})


_OPENERS = ("Why does", "How can", "What makes", "When should", "Where do", "Which", "How often does", "Who")
_WORDS = ("river", "cheese", "valley", "mountain", "winter", "copper", "harvest", "lantern", "orchard", "tide",
          "granite", "meadow", "falcon", "bridge", "market", "glacier", "violin", "compass", "saddle", "harbor",
          "maple", "quarry", "thunder", "pepper", "ledger", "canal", "beacon", "cellar", "fern", "anvil",
          "willow", "comet", "tunnel", "barley", "signal", "marble", "kettle", "ferry", "lichen", "vessel")


def _question(chunk: str, i: int) -> str:
    """A question unique to the chunk and varied in wording, as a model's would be."""
    rng = random.Random(f"{chunk}:{i}")
    return f"{rng.choice(_OPENERS)} the {' '.join(rng.sample(_WORDS, 5))} matter in passage {chunk}?"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fault-injecting OpenAI-compatible server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    args = parser.parse_args()
    server = FaultServer(latency_s=args.latency, port=args.port)

    async def run() -> None:
        await server.serve()
        print(server.port, flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
