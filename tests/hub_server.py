"""A small stand-in for the Hugging Face Hub, on 127.0.0.1, for the hub tests.

It answers what huggingface_hub 2.4 asks when workbench/models/hub.py downloads a model:
`GET /api/models/{repo}/revision/{rev}` (the commit and its files, with sizes) and
`HEAD`/`GET /{repo}/resolve/{rev}/{path}` (with `X-Repo-Commit`, `ETag` and
`Content-Length`), and the hub's errors by their `X-Error-Code` (RepoNotFound,
RevisionNotFound, EntryNotFound, GatedRepo). Every request is logged, so a test can say
which files were fetched, or that nothing was.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class Repo:
    def __init__(self, gated: bool = False):
        self.gated = gated
        self.commits: dict[str, dict[str, bytes]] = {}
        self.refs: dict[str, str] = {}


class HubServer:
    """`add(repo, files)` commits files to a branch; `url` is the endpoint; `stop()` closes the port."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                hub._answer(self, body=True)

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, repo: str, files: dict[str, bytes], *, branch: str = "main", gated: bool = False) -> str:
        """Commit `files` (the whole tree) to `branch`; returns the commit's sha."""
        r = self.repos.setdefault(repo, Repo(gated))
        digest = hashlib.sha1(repo.encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path]).digest())
        digest.update(str(len(r.commits)).encode())
        sha = digest.hexdigest()
        r.commits[sha] = dict(files)
        r.refs[branch] = sha
        return sha

    def fetched(self) -> list[str]:
        """The files downloaded so far (GET of a resolve URL), by path."""
        return [
            p.split("/resolve/", 1)[1].split("/", 1)[1] for m, p in self.requests if m == "GET" and "/resolve/" in p
        ]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- answering ------------------------------------------------------------------------
    def _answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append((h.command, path))
        if path.startswith("/api/models/"):
            repo, _, rev = path[len("/api/models/") :].partition("/revision/")
            found = self._commit(h, repo, rev or "main")
            if found is not None:
                sha, files = found
                info = {
                    "id": repo,
                    "modelId": repo,
                    "sha": sha,
                    "private": False,
                    "gated": "manual" if self.repos[repo].gated else False,
                    "siblings": [{"rfilename": p, "size": len(data)} for p, data in sorted(files.items())],
                }
                self._send(h, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
            return
        if "/resolve/" in path:
            repo, _, rest = path.lstrip("/").partition("/resolve/")
            # a revision may hold '/' (refs/pr/1): the longest known revision that prefixes the rest
            r = self.repos.get(repo)
            rev, _, filename = rest.partition("/")
            if r is not None:
                for known in sorted([*r.refs, *r.commits], key=len, reverse=True):
                    if rest.startswith(known + "/"):
                        rev, filename = known, rest[len(known) + 1 :]
                        break
            found = self._commit(h, repo, rev, head=not body)
            if found is None:
                return
            sha, files = found
            if self.repos[repo].gated and "authorization" not in {k.lower() for k in h.headers}:
                self._error(h, 401, "GatedRepo", f"Access to model {repo} is restricted.", not body)
                return
            if filename not in files:
                self._error(h, 404, "EntryNotFound", f"{filename} does not exist", not body)
                return
            data = files[filename]
            headers = {
                "X-Repo-Commit": sha,
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                "Content-Type": "application/octet-stream",
            }
            self._send(h, 200, data, headers, body)
            return
        self._error(h, 404, "", "not found", not body)

    def _commit(
        self, h: BaseHTTPRequestHandler, repo: str, rev: str, head: bool = False
    ) -> tuple[str, dict[str, bytes]] | None:
        r = self.repos.get(repo)
        if r is None:
            self._error(h, 404, "RepoNotFound", "Repository not found", head)
            return None
        sha = r.refs.get(rev, rev)
        if sha not in r.commits:
            self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
            return None
        return sha, r.commits[sha]

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, message: str, head: bool) -> None:
        headers = {"X-Error-Message": message, "Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        self._send(h, status, json.dumps({"error": message}).encode(), headers, not head)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)
