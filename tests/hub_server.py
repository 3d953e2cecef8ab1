"""A small Hugging Face Hub stand-in on 127.0.0.1 for tests: real HTTP, answering the requests that
``huggingface_hub`` makes (listing a model repository, HEAD/GET of a file), from a local folder.

    server = HubServer(folder, repo="cguoh/MambaIR").start()   # files under folder/ are the repo
    os.environ["HF_ENDPOINT"] = server.url
    ...
    server.stop()

Requests answered (the shapes huggingface_hub 2.x reads):
- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: JSON with ``sha`` and ``siblings``;
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true``: a JSON list of
  ``{type, oid, size, path, lfs: {oid (sha256), size, pointerSize}}``;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: the bytes, with ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag`` (the sha256, as the Hub sends for LFS files), ``Content-Length``; ``Range`` honoured.
A missing file is 404 with ``X-Error-Code: EntryNotFound``, an unknown repository 404 with
``RepoNotFound`` (as the Hub answers). Every request is logged in ``server.requests``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """Serve ``root`` as the model repository ``repo`` on a free 127.0.0.1 port."""

    def __init__(self, root: str | Path, repo: str = "cguoh/MambaIR") -> None:
        self.root = Path(root)
        self.repo = repo
        self.requests: list[tuple[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL for ``HF_ENDPOINT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def files(self) -> list[Path]:
        """Files of the repository, sorted."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def _entry(self, p: Path) -> dict:
        data = p.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        return {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data),
                "path": p.relative_to(self.root).as_posix(),
                "lfs": {"oid": sha, "size": len(data), "pointerSize": 134}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _json(self, obj) -> None:
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _missing(self, code: str) -> None:
                body = json.dumps({"error": code}).encode()
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _route(self) -> None:
                path = unquote(urlsplit(self.path).path)
                server.requests.append((self.command, self.path))
                api = f"/api/models/{server.repo}"
                if path in (api, f"{api}/revision/main") or path.startswith(f"{api}/revision/"):
                    siblings = [{"rfilename": p.relative_to(server.root).as_posix()} for p in server.files()]
                    return self._json({"id": server.repo, "modelId": server.repo, "sha": COMMIT,
                                       "siblings": siblings, "private": False, "gated": False})
                if path.startswith(f"{api}/tree/"):
                    rest = path[len(f"{api}/tree/"):].split("/", 1)
                    under = rest[1].strip("/") if len(rest) > 1 else ""
                    base = server.root / under if under else server.root
                    if not base.exists():
                        return self._missing("EntryNotFound")
                    recursive = "recursive=true" in self.path.lower() or "recursive=1" in self.path
                    items = base.rglob("*") if recursive else base.iterdir()
                    out = []
                    for p in sorted(items):
                        if p.is_dir():
                            out.append({"type": "directory", "oid": "0" * 40,
                                        "path": p.relative_to(server.root).as_posix(), "size": 0})
                        else:
                            out.append(server._entry(p))
                    return self._json(out)
                if path.startswith("/api/"):
                    return self._missing("RepoNotFound")
                prefix = f"/{server.repo}/resolve/"
                if not path.startswith(prefix):
                    return self._missing("RepoNotFound")
                rel = path[len(prefix):].split("/", 1)[1] if "/" in path[len(prefix):] else ""
                f = server.root / rel
                if not rel or not f.is_file():
                    return self._missing("EntryNotFound")
                data = f.read_bytes()
                sha = hashlib.sha256(data).hexdigest()
                start, end = 0, len(data) - 1
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start, end = int(a or 0), int(b) if b else len(data) - 1
                self.send_response(206 if rng else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data[start:end + 1])

            def do_GET(self) -> None:  # noqa: N802 (http.server's names)
                self._route()

            def do_HEAD(self) -> None:  # noqa: N802
                self._route()

        return Handler
