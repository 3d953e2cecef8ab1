"""A small Hugging Face Hub stand-in on 127.0.0.1 for tests: real HTTP, answering the requests that
``huggingface_hub`` makes (listing a model repository, HEAD/GET of a file), from a local folder, and
a second local server on another port that plays the Hub's CDN for large files.

    server = HubServer(folder, repo="cguoh/MambaIR").start()   # files under folder/ are the repo
    os.environ["HF_ENDPOINT"] = server.url
    ...
    server.stop()

Files are of two kinds, as on the Hub: LFS files (``is_lfs``: names the repository's .gitattributes
would track, such as ``*.pth``, or files of 10 MiB and more) and plain git files (small text files).
Requests answered (the shapes huggingface_hub 2.x reads):
- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: JSON with ``sha`` and ``siblings``;
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=true``: a JSON list of
  ``{type, oid, size, path}`` (``oid`` the git blob sha1), plus ``lfs: {oid (sha256), size, pointerSize}``
  for LFS files only;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``:
  - a plain git file: 200 with the bytes, ``X-Repo-Commit``, ``ETag`` (the git blob sha1),
    ``Content-Length``;
  - an LFS file: ``302 Found`` with ``Location`` on the CDN server (another port, so another origin:
    huggingface_hub does not follow it for HEAD and reads the metadata from the 302 itself, as from the
    Hub), ``X-Repo-Commit``, ``ETag`` (the pointer file's sha1), ``X-Linked-Etag`` (the sha256),
    ``X-Linked-Size``; no body;
- ``GET /{sha256}`` on the CDN server: the bytes, ``Range`` honoured (also on plain files).
A missing file is 404 with ``X-Error-Code: EntryNotFound`` (and ``X-Repo-Commit``), an unknown
repository 404 with ``RepoNotFound`` (as the Hub answers). ``damaged`` holds repository paths whose
served bytes get one byte flipped (same size: only a hash check can notice). Every request is logged
in ``server.requests`` (Hub) and ``server.cdn_requests`` (CDN).
No Xet: the stand-in sends no ``X-Xet-*`` headers, so huggingface_hub downloads over plain HTTP.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".onnx", ".zip")  # a typical .gitattributes
LFS_MIN_SIZE = 10 * 2**20  # the Hub refuses plain git files of 10 MiB and more


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's bytes (what the Hub lists as ``oid`` of a plain file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS file."""
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
            f"size {len(data)}\n").encode()


def default_is_lfs(rel: str, size: int) -> bool:
    """LFS when .gitattributes would track the name or the file is too large for plain git."""
    return rel.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


def _send(handler: BaseHTTPRequestHandler, data: bytes, headers: dict[str, str]) -> None:
    """200 (or 206 for a ``Range``) with ``data``'s requested bytes; no body for HEAD."""
    start, end = 0, len(data) - 1
    rng = handler.headers.get("Range", "")
    if rng.startswith("bytes="):
        a, _, b = rng[6:].partition("-")
        start, end = int(a or 0), min(int(b), len(data) - 1) if b else len(data) - 1
    handler.send_response(206 if rng else 200)
    for k, v in headers.items():
        handler.send_header(k, v)
    if rng:
        handler.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
    handler.send_header("Content-Length", str(end - start + 1))
    handler.send_header("Content-Type", "application/octet-stream")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data[start:end + 1])


class HubServer:
    """Serve ``root`` as the model repository ``repo`` on a free 127.0.0.1 port, LFS files through a
    CDN server on another port; ``is_lfs(path, size)`` says which files are LFS (``default_is_lfs``)."""

    def __init__(self, root: str | Path, repo: str = "cguoh/MambaIR",
                 is_lfs: Callable[[str, int], bool] = default_is_lfs) -> None:
        self.root = Path(root)
        self.repo = repo
        self.is_lfs = is_lfs
        self.damaged: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.cdn_requests: list[tuple[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._cdn_handler())
        self._threads = [threading.Thread(target=h.serve_forever, daemon=True)
                         for h in (self._httpd, self._cdn)]

    @property
    def url(self) -> str:
        """Base URL for ``HF_ENDPOINT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        """Base URL of the CDN stand-in (another port: another origin)."""
        host, port = self._cdn.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        """Start serving in daemon threads."""
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the sockets."""
        for h in (self._httpd, self._cdn):
            h.shutdown()
            h.server_close()

    def files(self) -> list[Path]:
        """Files of the repository, sorted."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def _rel(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix()

    def served_bytes(self, rel: str) -> bytes:
        """What a download of ``rel`` receives: the file's bytes, one flipped when it is in ``damaged``."""
        data = (self.root / rel).read_bytes()
        if rel in self.damaged and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    def _entry(self, p: Path) -> dict:
        data = p.read_bytes()
        rel = self._rel(p)
        if not self.is_lfs(rel, len(data)):
            return {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": rel}
        pointer = lfs_pointer(data)
        lfs = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(pointer)}
        return {"type": "file", "oid": git_blob_sha1(pointer), "size": len(data), "path": rel, "lfs": lfs}

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
                if code == "EntryNotFound":
                    self.send_header("X-Repo-Commit", COMMIT)
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
                    siblings = [{"rfilename": server._rel(p)} for p in server.files()]
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
                            out.append({"type": "directory", "oid": "0" * 40, "path": server._rel(p),
                                        "size": 0})
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
                entry = server._entry(f)
                if "lfs" not in entry:  # a plain git file: served here, its ETag the git blob id
                    return _send(self, server.served_bytes(rel), {"X-Repo-Commit": COMMIT,
                                                                  "ETag": f'"{entry["oid"]}"'})
                sha = entry["lfs"]["oid"]  # an LFS file: redirected to the CDN, metadata on the 302
                self.send_response(302)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{entry["oid"]}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(entry["size"]))
                self.send_header("Location", f"{server.cdn_url}/{sha}?path={rel}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 (http.server's names)
                self._route()

            def do_HEAD(self) -> None:  # noqa: N802
                self._route()

        return Handler

    def _cdn_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _route(self) -> None:
                server.cdn_requests.append((self.command, self.path))
                sha = urlsplit(self.path).path.strip("/")
                for p in server.files():
                    entry = server._entry(p)
                    if "lfs" in entry and entry["lfs"]["oid"] == sha:
                        return _send(self, server.served_bytes(entry["path"]), {"ETag": f'"{sha}"'})
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                self._route()

            def do_HEAD(self) -> None:  # noqa: N802
                self._route()

        return Handler
