"""A stand-in for the Hugging Face hub on the loopback address, for tests and benchmarks.

Serves ``ROOT/OWNER/NAME/REVISION/FILE`` at ``/OWNER/NAME/resolve/REVISION/FILE`` the way
the hub does for ``huggingface_hub``: HEAD with the commit and ETag headers, GET with byte
ranges (including suffix ranges), the hub's error codes for a missing repository,
revision or file, and ``/api/models/OWNER/NAME/refs`` listing the revisions as branches. It counts every request and every body byte it sends, so a test can
check what a reader fetched.

>>> with FakeHub(root) as hub:                      # doctest: +SKIP
...     hub.endpoint, hub.bytes_sent
('http://127.0.0.1:...', 0)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_PATH = re.compile(r"^/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")
_REFS = re.compile(r"^/api/models/([^/]+)/([^/]+)/refs$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class FakeHub:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving ``root``; use as a context manager."""

    def __init__(self, root: str | Path, range_support: bool = True):
        self.root = Path(root)
        self.range_support = range_support
        self.requests: list[tuple[str, str, str | None]] = []
        self.bytes_sent = 0
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _error(self, code: int, error_code: str) -> None:
                self.send_response(code)
                self.send_header("X-Error-Code", error_code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _refs(self, owner: str, name: str) -> None:
                repo = hub.root / owner / name
                if not repo.is_dir():
                    return self._error(404, "RepoNotFound")
                branches = [{"name": d.name, "ref": f"refs/heads/{d.name}",
                             "targetCommit": hashlib.sha1(f"{owner}/{name}@{d.name}".encode()).hexdigest()}
                            for d in sorted(repo.iterdir()) if d.is_dir()]
                data = json.dumps({"branches": branches, "converts": [], "tags": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self, body: bool) -> None:
                r = _REFS.match(self.path.split("?", 1)[0])
                if r and self.command == "GET":
                    with hub._lock:
                        hub.requests.append((self.command, self.path, None))
                    return self._refs(*r.groups())
                m = _PATH.match(self.path.split("?", 1)[0])
                rng = self.headers.get("Range")
                with hub._lock:
                    hub.requests.append((self.command, self.path, rng))
                if not m:
                    return self._error(404, "RepoNotFound")
                owner, name, rev, fn = m.groups()
                repo = hub.root / owner / name
                if not repo.is_dir():
                    return self._error(404, "RepoNotFound")
                if not (repo / rev).is_dir():
                    return self._error(404, "RevisionNotFound")
                f = repo / rev / fn
                if not f.is_file():
                    return self._error(404, "EntryNotFound")
                size = f.stat().st_size
                start, end, status = 0, size - 1, 200
                r = _RANGE.match(rng or "") if hub.range_support else None
                if r and (r.group(1) or r.group(2)):
                    a, b = r.groups()
                    if a == "":  # suffix range: the last b bytes
                        start, end = max(0, size - int(b)), size - 1
                    else:
                        start, end = int(a), min(size - 1, int(b)) if b else size - 1
                    status = 206
                commit = hashlib.sha1(f"{owner}/{name}@{rev}".encode()).hexdigest()
                self.send_response(status)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", '"' + hashlib.sha1(f"{commit}/{fn}:{size}".encode()).hexdigest() + '"')
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                n = max(0, end - start + 1)
                self.send_header("Content-Length", str(n if body or status == 206 else size))
                self.end_headers()
                if body and n:
                    with open(f, "rb") as fh:
                        fh.seek(start)
                        data = fh.read(n)
                    self.wfile.write(data)
                    with hub._lock:
                        hub.bytes_sent += len(data)

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.bytes_sent = 0
