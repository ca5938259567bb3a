"""A stand-in for the few GitHub REST endpoints the comment poster uses, over real HTTPS.

``FakeGitHub`` is a threaded HTTPS server on 127.0.0.1 (random port) with a self-signed
certificate made for it by the ``openssl`` command line. It serves:

* ``GET    /repos/{owner}/{repo}/pulls/{n}``
* ``GET    /repos/{owner}/{repo}/issues/{n}/comments?per_page=&page=`` (``Link`` headers)
* ``POST   /repos/{owner}/{repo}/issues/{n}/comments``
* ``PATCH  /repos/{owner}/{repo}/issues/comments/{id}``

and the repository endpoints of the monitoring loop, retraining and the release
(``tests.fake_github_repo``: issues, labels, workflow dispatch, pull requests, releases; state in
``fake.state``). It records every request (method, path, query, headers, body), and can be
scripted: fail the next requests with any status and headers (``fail_next``), answer writes with
403 like a fork's read-only token (``read_only``), page at most ``max_per_page`` comments, serve
under a path prefix like GitHub Enterprise Server's ``/api/v3``.

``run_make_comment`` runs ``make comment`` the way the workflow does (the repository checkout as
the working directory, the artifact elsewhere, a minimal environment), and ``capture_post``
posts an artifact folder (e.g. ``reports/pr`` after ``make report``) to a fresh fake and returns
the exact body that would appear on the pull request.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests import fake_github_repo
from tests.helpers import REPO

TOKEN = "ghs_test_token_0123456789"
REPOSITORY = "octo-org/model-repo"
SERVER_URL = "https://github.com"
BOT = "github-actions[bot]"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost): (cert.pem, key.pem)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.is_file():
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
                "-addext", "extendedKeyUsage=serverAuth",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return cert, key


@dataclass
class Recorded:
    method: str
    path: str  # without the API prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: object  # parsed JSON, or None


@dataclass
class Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    methods: tuple[str, ...] | None = None  # None: any method
    body: str = "<html><body>502 Bad Gateway</body></html>"


class FakeGitHub:
    def __init__(
        self,
        cert_dir: Path,
        *,
        repo: str = REPOSITORY,
        token: str = TOKEN,
        prefix: str = "",
        max_per_page: int = 100,
    ) -> None:
        self.cert, self.key = make_certificate(cert_dir)
        self.repo, self.token, self.prefix = repo, token, prefix.rstrip("/")
        self.max_per_page = max_per_page
        self.read_only = False
        self.next_link_base: str | None = None  # point "next" links elsewhere (a test)
        self.pulls: dict[int, str] = {}  # number -> head sha
        self.comments: dict[int, list[dict]] = {}  # issue number -> comments, oldest first
        self.state = fake_github_repo.RepoState()  # issues, labels, dispatches, releases...
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---- scripting

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"https://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def fail_next(
        self,
        count: int = 1,
        status: int = 502,
        headers: dict[str, str] | None = None,
        methods: tuple[str, ...] | None = None,
    ) -> None:
        for _ in range(count):
            self.failures.append(Failure(status, dict(headers or {}), methods))

    def add_comment(self, number: int, body: str, login: str = "someone", kind: str = "User"):
        with self._lock:
            self._next_id += 1
            comment = {
                "id": self._next_id,
                "body": body,
                "user": {"login": login, "type": kind},
                "html_url": f"{SERVER_URL}/{self.repo}/pull/{number}#issuecomment-{self._next_id}",
            }
            self.comments.setdefault(number, []).append(comment)
            return comment

    @property
    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]

    def bodies(self, number: int) -> list[str]:
        return [c["body"] for c in self.comments.get(number, [])]

    # ---- lifecycle

    def start(self) -> FakeGitHub:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the API

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes):
        """Return (status, headers, JSON-able body or str)."""
        parts = urlsplit(target)
        path = parts.path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return 404, {}, {"message": "Not Found"}
            path = path[len(self.prefix) :]
        query = parse_qs(parts.query)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(Recorded(method, path, query, headers, body))
            failure = next(
                (f for f in self.failures if f.methods is None or method in f.methods), None
            )
            if failure is not None:
                self.failures.remove(failure)
                return failure.status, failure.headers, failure.body
        if headers.get("authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
            return 401, {}, {"message": "Bad credentials", "status": "401"}
        if path == f"/repos/{self.repo}":
            return fake_github_repo.handle(self, method, [""], query, body)
        prefix = f"/repos/{self.repo}/"
        if not path.startswith(prefix):
            return 404, {}, {"message": "Not Found", "status": "404"}
        route = path[len(prefix) :].split("/")
        if method == "GET" and len(route) == 2 and route[0] == "pulls" and route[1].isdigit():
            number = int(route[1])
            if number not in self.pulls:
                return 404, {}, {"message": "Not Found", "status": "404"}
            return 200, {}, {"number": number, "state": "open", "head": {"sha": self.pulls[number]}}
        if (
            len(route) == 3
            and route[0] == "issues"
            and route[1].isdigit()
            and route[2] == "comments"
        ):
            number = int(route[1])
            if method == "GET":
                return self._list(number, query)
            if method == "POST":
                return self._write(lambda: self._create(number, body))
        if method == "PATCH" and len(route) == 3 and route[:2] == ["issues", "comments"]:
            return self._write(lambda: self._update(int(route[2]), body))
        return fake_github_repo.handle(self, method, route, query, body)

    def _write(self, action):
        if self.read_only:
            return (
                403,
                {},
                {
                    "message": "Resource not accessible by integration",
                    "documentation_url": "https://docs.github.com/rest/issues/comments",
                    "status": "403",
                },
            )
        return action()

    @staticmethod
    def _too_long(body: object) -> tuple | None:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            return 422, {}, {"message": "Invalid request: body is missing", "status": "422"}
        if len(body["body"]) > 65_536:
            return 422, {}, {"message": "Body is too long (maximum is 65536 characters)"}
        return None

    def _create(self, number: int, body: object):
        if number not in self.pulls and number not in self.state.issues:
            return 404, {}, {"message": "Not Found", "status": "404"}
        if error := self._too_long(body):
            return error
        assert isinstance(body, dict)
        return 201, {}, self.add_comment(number, body["body"], login=BOT, kind="Bot")

    def _update(self, comment_id: int, body: object):
        if error := self._too_long(body):
            return error
        assert isinstance(body, dict)
        with self._lock:
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == comment_id:
                        comment["body"] = body["body"]
                        return 200, {}, comment
        return 404, {}, {"message": "Not Found", "status": "404"}

    def _list(self, number: int, query: dict[str, list[str]]):
        per_page = min(int(query.get("per_page", ["30"])[0]), self.max_per_page)
        page = int(query.get("page", ["1"])[0])
        with self._lock:
            comments = list(self.comments.get(number, []))
        pages = max(1, -(-len(comments) // per_page))
        items = comments[(page - 1) * per_page : page * per_page]
        base = (self.next_link_base or self.url) + f"/repos/{self.repo}/issues/{number}/comments"
        links = []
        if page < pages:
            links.append(f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{base}?per_page={per_page}&page={pages}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?per_page={per_page}&page=1>; rel="first"')
        return 200, ({"Link": ", ".join(links)} if links else {}), items


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = fake.handle(self.command, self.path, headers, raw)
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            kind = "text/html" if isinstance(body, str) else "application/json; charset=utf-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


# --------------------------------------------------------------------------- running the job


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (grey pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


SAMPLE_REPORT = """\
## ❌ Model gate FAILED

**FAILED: accuracy fell 0.0116 against base (0.9884 → 0.9767; allowed worsening 0.01) (+3 more)**

This branch (`{short}`) against `origin/main` (`5e1f2a9c`).

### Metrics (test set)

| metric | base | this branch | change | gate |
|---|---:|---:|---:|:---:|
| accuracy | 0.9884 | 0.9767 | -0.0116 (worse) | ❌ |
| balanced_accuracy | 0.9804 | 0.9608 | -0.0196 (worse) | ❌ |
| f1_macro | 0.9856 | 0.9706 | -0.0149 (worse) | ❌ |
| log_loss | 0.1728 | 0.2893 | +0.1164 (worse) | ❌ |
| roc_auc_ovr | 1.0000 | 1.0000 | 0 |  |

<details><summary>Every gate check</summary>

- ❌ accuracy: 0.9767 < base 0.9884 − 0.01
- ✅ roc_auc_ovr: 1.0000 ≥ 0.95

</details>

### Params

| param | base | this branch |
|---|---|---|
| `train.estimator.params.C` | `0.05` | `0.02` |

### Data

Data unchanged against base. Data contract: ✅ passed (342 rows).

### Plots (base dashed, this branch solid)

![ROC curves](roc.png)
![Precision-recall curves](precision_recall.png)

### Provenance

- commit: `{sha}` (base `5e1f2a9c0d3b4e6f7a8b9c0d1e2f3a4b5c6d7e8f`)
- workflow run: https://github.com/{repo}/actions/runs/4242
"""


def write_sample_artifact(folder: Path, head_sha: str, pr_number: int = 12) -> Path:
    """A ``reports/pr``-style artifact: report.md, pr.json (with attachments) and two PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    report = SAMPLE_REPORT.format(short=head_sha[:8], sha=head_sha, repo=REPOSITORY)
    (folder / "report.md").write_text(report, encoding="utf-8")
    for name in ("roc.png", "precision_recall.png"):
        (folder / name).write_bytes(png_bytes())
    (folder / "verdict.json").write_text('{"passed": false}\n')
    info = {
        "pr_number": pr_number,
        "head_sha": head_sha,
        "attachments": ["roc.png", "precision_recall.png"],
    }
    (folder / "pr.json").write_text(json.dumps(info))
    return folder


def _python_dir() -> str:
    """A folder with a plain python3 (no project packages), as on a fresh runner."""
    if Path("/usr/bin/python3").exists():
        return "/usr/bin"
    return str(Path(getattr(sys, "_base_executable", sys.executable)).parent)


def job_env(fake: FakeGitHub, head_sha: str, run_id: str = "4242", **extra: str) -> dict:
    """The comment job's environment: only what GitHub sets and the workflow passes."""
    make = shutil.which("make") or "/usr/bin/make"
    path = os.pathsep.join(dict.fromkeys([str(Path(make).parent), _python_dir(), "/bin"]))
    env = {
        "PATH": path,
        "LANG": "C.UTF-8",
        "GITHUB_API_URL": fake.url,
        "GITHUB_SERVER_URL": SERVER_URL,
        "GITHUB_REPOSITORY": fake.repo,
        "GITHUB_TOKEN": fake.token,
        "SSL_CERT_FILE": str(fake.cert),
        "HEAD_SHA": head_sha,
        "RUN_ID": run_id,
        "MLCI_COMMENT_RETRY_DELAY": "0.01",
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run_make_comment(
    fake: FakeGitHub, artifact: Path, head_sha: str, run_id: str = "4242", **extra: str
) -> subprocess.CompletedProcess:
    """``make comment`` as the workflow runs it: cwd is the checkout, the artifact elsewhere."""
    env = job_env(fake, head_sha, run_id, **extra)
    command = ["make", "--no-print-directory", "comment", f"REPORT_DIR={artifact}"]
    command.append(f"HEAD_SHA={env['HEAD_SHA']}")
    if env.get("RUN_ID"):
        command.append(f"RUN_ID={env['RUN_ID']}")
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def capture_post(
    artifact_dir: Path | str, pr_number: int | None = None, repo: str = REPOSITORY
) -> str:
    """Post ``artifact_dir`` (e.g. ``reports/pr`` after ``make report``) to a fresh fake GitHub
    through ``make comment`` and return the exact comment body that was posted.

    Without a ``pr.json`` (``make report`` run locally writes none), one is made for pull request
    ``pr_number`` (default 12) declaring every PNG in the folder as an attachment."""
    source = Path(artifact_dir)
    with tempfile.TemporaryDirectory(prefix="mlci-capture-") as tmp:
        artifact = Path(tmp) / "model-report"
        shutil.copytree(source, artifact, symlinks=True)
        info_path = artifact / "pr.json"
        if info_path.is_file():
            info = json.loads(info_path.read_text())
        else:
            pngs = sorted(p.relative_to(artifact).as_posix() for p in artifact.rglob("*.png"))
            info = {"pr_number": 12, "head_sha": "c0ffee" + "0" * 34, "attachments": pngs}
        if pr_number is not None:
            info["pr_number"] = pr_number
        info_path.write_text(json.dumps(info))
        with FakeGitHub(Path(tmp) / "tls", repo=repo) as fake:
            fake.pulls[info["pr_number"]] = info["head_sha"]
            result = run_make_comment(fake, artifact, info["head_sha"])
            if result.returncode != 0:
                raise RuntimeError(f"make comment failed:\n{result.stdout}{result.stderr}")
            posts = [r for r in fake.writes if r.method == "POST"]
            assert len(posts) == 1, fake.writes
            body = posts[0].body
            assert isinstance(body, dict)
            return body["body"]


if __name__ == "__main__":
    # python -m tests.fake_github reports/pr [owner/repo] > comment.md
    folder = sys.argv[1] if len(sys.argv) > 1 else "reports/pr"
    sys.stdout.write(capture_post(folder, repo=sys.argv[2] if len(sys.argv) > 2 else REPOSITORY))
