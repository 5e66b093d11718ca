"""A loopback Hugging Face Hub for tests: whoami, model info and file resolve, as the real Hub answers.

Point ``HF_ENDPOINT`` at ``server.url`` and use the real huggingface_hub client against it::

    with HubServer(tokens={"hf_" + "a" * 34: {"name": "alice", "role": "read"}},
                   repos={"org/model": {"status": "ok", "siblings": ["model_index.json"]}}) as hub:
        env["HF_ENDPOINT"] = hub.url

tokens: token -> {"name": "alice", "role": "read"|"write"|"fineGrained", "expired": False}
repos:  repo_id -> {"status": "ok"|"gated"|"missing"|"deleted"|"private", "siblings": [filenames],
                    "sha": "…", "files": {filename: bytes}, "access": [tokens allowed into a gated/private repo]}
hang=True: accept connections and never answer (timeout tests); handlers are released on exit.
gated_info_public=True: /api/models/{gated repo} answers 200 (as huggingface.co does today) and only
the files are refused; by default model info of a gated repo without access is refused too.

Answers follow huggingface_hub's whoami and hf_raise_for_status (utils/_http.py): a request carrying an unknown or expired token gets 401
``Invalid credentials in Authorization header`` everywhere (whoami says ``Invalid user token.``);
gated without access -> 401 (anonymous) / 403 (authenticated) with ``X-Error-Code: GatedRepo``;
missing / deleted / private -> 401 with ``X-Error-Code: RepoNotFound``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
EXPIRED_MESSAGE = "Invalid user token. The token has expired."
DEFAULT_SHA = "0123456789abcdef0123456789abcdef01234567"

_MODEL_RE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+|[^/]+)(?:/revision/(?P<rev>[^/]+))?/?$")
_RESOLVE_RE = re.compile(r"^/(?P<repo>[^/]+/[^/]+|[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class HubServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a daemon thread; use as a context manager."""

    def __init__(self, *, tokens: dict[str, dict] | None = None, repos: dict[str, dict] | None = None,
                 hang: bool = False, gated_info_public: bool = False):
        self.gated_info_public = gated_info_public
        self.tokens = dict(tokens or {})
        self.repos = dict(repos or {})
        self.hang = hang
        self.requests: list[tuple[str, str, bool]] = []
        self._release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="hub-server")

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the Hub's answers -------------------------------------------------------------------------
    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                hub._serve(self, "GET")

            def do_HEAD(self):
                hub._serve(self, "HEAD")

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        auth = h.headers.get("Authorization", "")
        path = unquote(urlsplit(h.path).path)
        self.requests.append((method, path, bool(auth)))
        if self.hang:
            self._release.wait()
            h.close_connection = True
            return
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        user = self.tokens.get(token) if token else None
        bad_token = token is not None and (user is None or user.get("expired"))
        if path.rstrip("/") == "/api/whoami-v2":
            return self._whoami(h, method, token, user, bad_token)
        if bad_token:
            return _send(h, method, 401, {"error": INVALID_CREDENTIALS}, {"X-Error-Message": INVALID_CREDENTIALS})
        m = _MODEL_RE.match(path)
        if m:
            return self._model_info(h, method, m.group("repo"), token)
        m = _RESOLVE_RE.match(path)
        if m:
            return self._resolve(h, method, m.group("repo"), m.group("file"), token)
        _send(h, method, 404, {"error": "Not Found"})

    def _whoami(self, h, method, token, user, bad_token) -> None:
        if token is None:
            return _send(h, method, 401, {"error": "Invalid username or password."},
                         {"X-Error-Message": "Invalid username or password."})
        if bad_token:
            message = EXPIRED_MESSAGE if user and user.get("expired") else "Invalid user token."
            return _send(h, method, 401, {"error": message}, {"X-Error-Message": message})
        name = user.get("name", "user")
        _send(h, method, 200, {
            "type": "user", "id": hashlib.sha1(name.encode()).hexdigest()[:24], "name": name,
            "fullname": name.title(), "email": f"{name}@example.invalid", "emailVerified": True,
            "canPay": False, "isPro": False, "periodEnd": None, "orgs": [],
            "auth": {"type": "access_token",
                     "accessToken": {"displayName": user.get("display_name", "lora-doctor-test"),
                                     "role": user.get("role", "read")}},
        })

    def _access(self, repo: dict, token) -> str:
        """'ok', or the error answer ('gated', 'notfound') for this repo and caller."""
        status = repo.get("status", "ok")
        allowed = token is not None and token in repo.get("access", ())
        if status in ("missing", "deleted") or (status == "private" and not allowed):
            return "notfound"
        if status == "gated" and not allowed:
            return "gated"
        return "ok"

    def _deny(self, h, method, repo_id, access, token) -> None:
        if access == "gated":
            message = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in."
            if token is not None:
                message = f"Access to model {repo_id} is restricted and you are not in the authorized list. Visit https://huggingface.co/{repo_id} to ask for access."
            return _send(h, method, 403 if token else 401, {"error": message},
                         {"X-Error-Code": "GatedRepo", "X-Error-Message": message})
        message = "Repository not found"
        _send(h, method, 401, {"error": message}, {"X-Error-Code": "RepoNotFound", "X-Error-Message": message})

    def _model_info(self, h, method, repo_id, token) -> None:
        repo = self.repos.get(repo_id, {"status": "missing"})
        access = self._access(repo, token)
        if access != "ok" and not (access == "gated" and self.gated_info_public):
            return self._deny(h, method, repo_id, access, token)
        siblings = list(repo.get("siblings", [])) or list(repo.get("files", {}))
        _send(h, method, 200, {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "modelId": repo_id,
            "sha": repo.get("sha", DEFAULT_SHA), "private": repo.get("status") == "private",
            "gated": "auto" if repo.get("status") == "gated" else False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "library_name": "diffusers",
            "siblings": [{"rfilename": name} for name in siblings],
        })

    def _resolve(self, h, method, repo_id, filename, token) -> None:
        repo = self.repos.get(repo_id, {"status": "missing"})
        access = self._access(repo, token)
        if access != "ok":
            return self._deny(h, method, repo_id, access, token)
        files = repo.get("files", {})
        names = set(repo.get("siblings", [])) | set(files)
        if filename not in names:
            return _send(h, method, 404, {"error": "Entry not found"},
                         {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"})
        body = files.get(filename, f"content of {repo_id}/{filename}\n".encode())
        if isinstance(body, str):
            body = body.encode()
        etag = hashlib.sha1(body).hexdigest()
        _send(h, method, 200, body, {"X-Repo-Commit": repo.get("sha", DEFAULT_SHA), "ETag": f'"{etag}"'},
              content_type="application/octet-stream")


def _send(h: BaseHTTPRequestHandler, method: str, status: int, body, headers: dict | None = None,
          content_type: str = "application/json") -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    h.end_headers()
    if method != "HEAD":
        h.wfile.write(data)
