"""The one GitHub REST client of the project, over ``urllib`` (standard library only: the comment
poster runs it without installing anything).

This module is the transport (``GitHub.request``: retries, errors, pagination, the token kept on
the API's host), the environment (``from_env``: ``GITHUB_TOKEN``/``GH_TOKEN``,
``GITHUB_REPOSITORY``, ``GITHUB_API_URL`` for GitHub Enterprise Server, CA bundles) and the
body limit (``fit_body``); :mod:`mlci.github_repo` has the loop's writes (issues, labels,
workflow dispatch, pull requests, releases) on top of it.

For the comment poster, ``GitHub`` reads a pull request's head commit, finds our earlier comment on
every page of the pull request's comments (by its marker, and only if the identity we post as wrote
it: anyone can paste the marker into a comment they can later edit), and updates it or creates one.
Retries of 5xx answers, secondary rate limits and network errors are bounded; a failed POST is
never repeated blindly. The token is never sent to another host: redirects are not followed and
every URL, including the pagination ``Link`` headers, must be on the API's origin. Errors are
``ApiError``, with a one-line message.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

MAX_PAGES = 100  # 10,000 comments at 100 a page
ATTEMPTS = 5
MAX_WAIT = 60.0  # never sleep longer than this for one retry
TIMEOUT = 30.0


class ApiError(Exception):
    """GitHub answered with an error (or could not be reached); the message is one line."""

    def __init__(self, message: str, status: int | None = None, wait: float | None = None):
        super().__init__(message)
        self.status = status
        self.wait = wait  # seconds after which trying again may work; None: it will not


def ssl_context(env: dict[str, str]) -> ssl.SSLContext:
    """The system's trust store plus any CA bundle named by the usual variables."""
    context = ssl.create_default_context()
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        bundle = env.get(variable)
        if not bundle:
            continue
        try:
            context.load_verify_locations(cafile=bundle)
        except (OSError, ssl.SSLError) as err:
            raise ApiError(f"{variable}={bundle}: not a readable CA bundle ({err})") from None
    return context


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it could carry the token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


def _one_line(text: str, limit: int = 200) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(status: int, body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8", "replace"))
        message = data.get("message") if isinstance(data, dict) else None
    except ValueError:
        data, message = None, None
    if not isinstance(message, str) or not message:
        message = body.decode("utf-8", "replace") or "no message"
    # A 422 says what was wrong in "errors": [{"code": "already_exists", "message": ...}, ...]
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors:
        said = [
            ": ".join(str(e[k]) for k in ("code", "message") if e.get(k))
            if isinstance(e, dict)
            else str(e)
            for e in errors[:3]
        ]
        message += f" ({'; '.join(filter(None, said))})"
    return f"HTTP {status}: {_one_line(message)}"


_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


def next_link(header: str | None) -> str | None:
    for url, rel in _LINK.findall(header or ""):
        if "next" in rel.split():
            return url
    return None


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    data: object


class GitHub:
    """A few REST calls with bounded retries of 5xx, secondary rate limits and network errors."""

    def __init__(
        self,
        api_url: str,
        token: str,
        context: ssl.SSLContext,
        *,
        base_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if urllib.parse.urlsplit(api_url).scheme.lower() != "https":
            raise ApiError(f"GITHUB_API_URL must be an https URL, got {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.origin = _origin(self.api_url)
        self.token = token
        self.base_delay = base_delay
        self.sleep = sleep
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirect()
        )

    def _wait(self, attempt: int, headers: dict[str, str]) -> float | None:
        """Seconds to wait before retrying, or None if the wait would be too long."""
        after = headers.get("retry-after")
        if after:
            try:
                seconds = float(after)
            except ValueError:
                when = email.utils.parsedate_to_datetime(after)
                seconds = when.timestamp() - time.time() if when else MAX_WAIT + 1
            return max(0.0, seconds) if seconds <= MAX_WAIT else None
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                seconds = float(headers["x-ratelimit-reset"]) - time.time() + 1
            except ValueError:
                seconds = 0.0
            if seconds > MAX_WAIT:
                return None
            return max(seconds, self.base_delay * 2**attempt)
        return min(self.base_delay * 2**attempt, MAX_WAIT)

    def pages(self, path: str, what: str) -> Iterator[object]:
        """Every item of a listing, following the ``Link: rel="next"`` pages (on this host only)."""
        url: str | None = path
        for _ in range(MAX_PAGES):
            if url is None:
                return
            answer = self.request("GET", url)
            if not isinstance(answer.data, list):
                raise ApiError(f"listing {what}: expected a JSON list")
            yield from answer.data
            url = next_link(answer.headers.get("link"))
            if url is not None and _origin(url) != self.origin:
                raise ApiError(f"the next page of {what} is on another host: not following it")
        raise ApiError(f"more than {MAX_PAGES} pages of {what}")

    @staticmethod
    def _retryable(status: int, headers: dict[str, str]) -> bool:
        if status >= 500:
            return True
        limited = "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
        return status in (403, 429) and limited

    def request(
        self, method: str, url: str, payload: object = None, *, retry: bool = True
    ) -> Response:
        if url.startswith("/"):
            url = self.api_url + url
        if _origin(url) != self.origin:
            raise ApiError(f"refusing to send the token to {_origin(url)[1]} (not the API host)")
        data = json.dumps(payload).encode() if payload is not None else None
        for attempt in range(ATTEMPTS if retry else 1):
            last = attempt == (ATTEMPTS if retry else 1) - 1
            request = urllib.request.Request(url, data=data, method=method)
            request.add_header("Authorization", f"Bearer {self.token}")
            request.add_header("Accept", "application/vnd.github+json")
            request.add_header("X-GitHub-Api-Version", "2022-11-28")
            request.add_header("User-Agent", "mlci")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            try:
                with self.opener.open(request, timeout=TIMEOUT) as answer:
                    headers = {k.lower(): v for k, v in answer.headers.items()}
                    body = answer.read(20_000_000)
                    status = answer.status
            except urllib.error.HTTPError as err:
                headers = {k.lower(): v for k, v in (err.headers or {}).items()}
                body = err.read(65_536) if err.fp else b""
                wait = self._wait(attempt, headers) if self._retryable(err.code, headers) else None
                if wait is None or last:
                    # a caller may retry a request made without retries (a POST)
                    again = None if retry else wait
                    raise ApiError(_message(err.code, body), err.code, again) from None
                self.sleep(wait)
                continue
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                wait = min(self.base_delay * 2**attempt, MAX_WAIT)
                if isinstance(reason, ssl.SSLCertVerificationError):
                    wait = None
                if wait is None or last:
                    message = f"cannot reach {self.origin[1]} ({_one_line(str(reason))})"
                    raise ApiError(message, None, None if retry else wait) from None
                self.sleep(wait)
                continue
            try:
                parsed = json.loads(body.decode("utf-8")) if body else None
            except ValueError:
                raise ApiError(
                    f"{method} {url}: HTTP {status} with a body that is not JSON"
                ) from None
            return Response(status, headers, parsed)
        raise AssertionError("unreachable")

    def pull_head(self, repo: str, number: int) -> str | None:
        data = self.request("GET", f"/repos/{repo}/pulls/{number}").data
        head = data.get("head") if isinstance(data, dict) else None
        sha = head.get("sha") if isinstance(head, dict) else None
        return sha if isinstance(sha, str) else None

    def find_comment(self, repo: str, number: int, author: str, marker: str) -> dict | None:
        """Our earlier comment: the oldest starting with ``marker`` and written by ``author``."""
        path = f"/repos/{repo}/issues/{number}/comments?per_page=100"
        for comment in self.pages(path, f"the comments of #{number}"):
            if not isinstance(comment, dict):
                continue
            user = comment.get("user") or {}
            login = user.get("login", "") if isinstance(user, dict) else ""
            body = comment.get("body") or ""
            if (
                isinstance(body, str)
                and body.startswith(marker)
                and isinstance(login, str)
                and login.lower() == author.lower()
                and isinstance(comment.get("id"), int)
            ):
                return comment
        return None

    def upsert(
        self, repo: str, number: int, body: str, author: str, marker: str
    ) -> tuple[str, str]:
        """Update our comment (see ``find_comment``) in place, or create it; ``body`` starts with
        ``marker``. Returns (verb, comment URL).

        Creating is not retried blindly: after a failed POST the comments are listed again, so a
        POST that GitHub carried out before failing is not repeated."""
        for attempt in range(ATTEMPTS):
            comment = self.find_comment(repo, number, author, marker)
            try:
                if comment is not None:
                    path = f"/repos/{repo}/issues/comments/{comment['id']}"
                    answer = self.request("PATCH", path, {"body": body})
                    verb = "updated"
                else:
                    path = f"/repos/{repo}/issues/{number}/comments"
                    answer = self.request("POST", path, {"body": body}, retry=False)
                    verb = "posted"
            except ApiError as err:
                # a 5xx, a secondary rate limit or a dropped connection: list again, then retry
                if err.wait is None or attempt == ATTEMPTS - 1:
                    raise
                self.sleep(err.wait)
                continue
            data = answer.data if isinstance(answer.data, dict) else {}
            return verb, str(data.get("html_url") or data.get("url") or "")
        raise AssertionError("unreachable")


# ---- the environment --------------------------------------------------------------------------

REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_REMOTE = re.compile(
    r"^(?:https://[^/]+/|git@[^:]+:|ssh://git@[^/]+/)([\w.-]+/[\w.-]+?)(?:\.git)?/?$"
)


def repository(env: Mapping[str, str]) -> str:
    """``GITHUB_REPOSITORY`` (set on runners), else owner/name from the ``origin`` remote."""
    name = env.get("GITHUB_REPOSITORY", "")
    if not name:
        try:
            url = subprocess.run(
                ["git", "remote", "get-url", "origin"], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            url = ""
        found = _REMOTE.match(url)
        name = found.group(1) if found else ""
    if not REPO_NAME.match(name):
        raise ApiError(
            f"GITHUB_REPOSITORY must be owner/name, got {name!r:.80} (set it, or an origin "
            "remote on GitHub)"
        )
    return name


def from_env(env: Mapping[str, str] | None = None) -> tuple[GitHub, str]:
    """(client, owner/name) from the environment GitHub Actions sets, or a laptop's:
    ``GITHUB_TOKEN`` (or ``GH_TOKEN``), ``GITHUB_REPOSITORY``, ``GITHUB_API_URL`` (default
    https://api.github.com), CA bundles (``SSL_CERT_FILE``...), ``MLCI_GITHUB_RETRY_DELAY``
    (seconds before the first retry, default 1)."""
    env = dict(os.environ if env is None else env)
    token = env.get("GITHUB_TOKEN") or env.get("GH_TOKEN")
    if not token:
        raise ApiError("set GITHUB_TOKEN (or GH_TOKEN) to a token for the repository")
    try:
        delay = float(env.get("MLCI_GITHUB_RETRY_DELAY") or 1.0)
    except ValueError:
        raise ApiError("MLCI_GITHUB_RETRY_DELAY must be a number of seconds") from None
    api = env.get("GITHUB_API_URL") or "https://api.github.com"
    return GitHub(api, token, ssl_context(env), base_delay=delay), repository(env)


# ---- the body limit ---------------------------------------------------------------------------

MAX_BODY = 65_536  # GitHub's limit on an issue, comment, pull request or release body
CUT_NOTE = "\n> [!NOTE]\n> ✂️ Cut to fit GitHub's limit of 65,536 characters: {where}\n"


def units(text: str) -> int:
    """Length as GitHub may count it: UTF-16 code units (never fewer than characters)."""
    return len(text.encode("utf-16-le")) // 2


def fit_body(text: str, where: str, limit: int = MAX_BODY) -> str:
    """``text`` if it fits; else its longest prefix of whole lines that does (an open code
    fence closed) followed by a note saying ``where`` the whole text is (a link)."""
    if units(text) <= limit:
        return text
    note = CUT_NOTE.format(where=where)
    budget = limit - units(note) - 4  # room for a closing fence
    kept, size, fence = [], 0, None
    for line in text.splitlines(keepends=True):
        if size + units(line) > budget:
            break
        kept.append(line)
        size += units(line)
        mark = line.lstrip()[:3]
        if mark in ("```", "~~~"):
            fence = None if fence == mark else (fence or mark)
    body = "".join(kept)
    if body and not body.endswith("\n"):
        body += "\n"
    return body + (f"{fence}\n" if fence else "") + note
