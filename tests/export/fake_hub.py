"""A small stand-in of the Hugging Face Hub's HTTP API on loopback, for huggingface_hub's real client
(HF_ENDPOINT points at it; HF_HUB_DISABLE_XET=1: Xet's storage service is not imitated, so large
files go through the Git LFS protocol, as without hf_xet).

Implemented: whoami-v2, repos/create, validate-yaml (the card's header), preupload, the LFS batch API with a PUT store, commit (NDJSON).
Every request is recorded in `hub.requests` as (method, path); anything else answers 404.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "hf_standin_token"
USER = "tester"
LFS_ABOVE = 1024
"""Files bigger than this are sent through LFS (the Hub decides by size and type)."""


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        """repo id -> {"private": bool, "files": {path: bytes}}"""
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict | None = None, content_type: str = "application/json") -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                    return True
                self._send(401, {"error": "Invalid credentials in Authorization header"})
                return False

            def do_GET(self) -> None:
                hub.requests.append(("GET", self.path))
                if self.path.startswith("/api/whoami-v2"):
                    if self._authorized():
                        self._send(200, {"type": "user", "name": USER, "orgs": [], "auth": {}})
                    return
                self._send(404, {"error": "not found"})

            def do_PUT(self) -> None:
                hub.requests.append(("PUT", self.path))
                if self.path.startswith("/lfs-store/"):
                    oid, data = self.path.rsplit("/", 1)[1], self._body()
                    if hashlib.sha256(data).hexdigest() != oid:
                        return self._send(400, {"error": "sha256 mismatch"})
                    hub.lfs[oid] = data
                    return self._send(200, {})
                self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                hub.requests.append(("POST", self.path))
                path = self.path.split("?")[0]
                body = self._body()
                if path == "/api/repos/create":
                    if not self._authorized():
                        return
                    data = json.loads(body)
                    repo_id = f"{data.get('organization') or USER}/{data['name']}"
                    if repo_id in hub.repos:
                        return self._send(409, {"error": "You already created this model repo",
                                                "url": f"{hub.url}/{repo_id}"})
                    private = data.get("visibility", "private" if data.get("private") else "public") == "private"
                    hub.repos[repo_id] = {"private": private, "files": {}}
                    return self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
                if path == "/api/validate-yaml":  # the client checks a README's metadata before a commit
                    content = json.loads(body).get("content", "")
                    if not content.startswith("---\n"):
                        return self._send(400, {"error": "the model card has no YAML header"})
                    return self._send(200, {"errors": [], "warnings": []})
                if path.startswith("/api/models/") and "/preupload/" in path:
                    if not self._authorized():
                        return
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [
                        {"path": f["path"], "uploadMode": "lfs" if f["size"] > LFS_ABOVE else "regular",
                         "shouldIgnore": False, "oid": None} for f in files]})
                if path.endswith(".git/info/lfs/objects/batch"):
                    if not self._authorized():
                        return
                    objects = json.loads(body)["objects"]
                    answer = []
                    for obj in objects:
                        item = {"oid": obj["oid"], "size": obj["size"]}
                        if obj["oid"] not in hub.lfs:  # what the Hub has is not asked for again
                            item["actions"] = {"upload": {"href": f"{hub.url}/lfs-store/{obj['oid']}"}}
                        answer.append(item)
                    return self._send(200, {"transfer": "basic", "objects": answer},
                                      content_type="application/vnd.git-lfs+json")
                if path.startswith("/api/models/") and "/commit/" in path:
                    if not self._authorized():
                        return
                    repo_id = path.removeprefix("/api/models/").split("/commit/")[0]
                    if repo_id not in hub.repos:
                        return self._send(404, {"error": f"Repository {repo_id} not found"})
                    files = hub.repos[repo_id]["files"]
                    for line in body.splitlines():
                        item = json.loads(line)
                        value = item["value"]
                        if item["key"] == "file":
                            files[value["path"]] = base64.b64decode(value["content"])
                        elif item["key"] == "lfsFile":
                            if value["oid"] not in hub.lfs:
                                return self._send(400, {"error": f"LFS object {value['oid']} was never uploaded"})
                            files[value["path"]] = hub.lfs[value["oid"]]
                    return self._send(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/abc123",
                                            "commitOid": "abc123" + "0" * 34, "pullRequestUrl": None})
                self._send(404, {"error": "not found"})

        return Handler
