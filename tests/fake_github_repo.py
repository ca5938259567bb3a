"""The repository endpoints the monitoring and retraining loop and the release use, served by
``tests.fake_github.FakeGitHub`` (kept apart so that file stays about the comment):

* ``GET    /repos/{owner}/{repo}``                                   (``default_branch``)
* ``GET    /repos/{owner}/{repo}/issues?labels=&state=&per_page=&page=`` (``Link`` headers; pull
  requests are listed too, as GitHub does, with a ``pull_request`` key; newest first)
* ``POST   /repos/{owner}/{repo}/issues``, ``PATCH /repos/{owner}/{repo}/issues/{n}``
* ``POST   /repos/{owner}/{repo}/labels``                            (422 ``already_exists``)
* ``POST   /repos/{owner}/{repo}/actions/workflows/{file}/dispatches`` (204; 404 unknown file)
* ``POST   /repos/{owner}/{repo}/pulls``         (422 no such branch / one already open)
* ``GET    /repos/{owner}/{repo}/git/ref/tags/{tag}``, ``POST /repos/{owner}/{repo}/releases``

Writes are checked as GitHub checks them (required fields, body length ≤ 65,536) and refused
with 403 when ``read_only`` is set, like a token without the permission.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

MAX_BODY = 65_536
FORBIDDEN = {
    "message": "Resource not accessible by integration",
    "documentation_url": "https://docs.github.com/rest",
    "status": "403",
}


@dataclass
class RepoState:
    default_branch: str = "main"
    issues: dict[int, dict] = field(default_factory=dict)  # number -> issue (or pull request)
    labels: dict[str, dict] = field(default_factory=dict)
    workflows: set[str] = field(default_factory=lambda: {"retrain.yml", "monitor.yml"})
    dispatches: list[dict] = field(default_factory=list)
    branches: set[str] = field(default_factory=lambda: {"main"})
    git_remote: Path | None = None  # a bare repository: its heads are the branches
    tags: set[str] = field(default_factory=set)
    releases: list[dict] = field(default_factory=list)
    next_number: int = 1


def add_issue(fake: Any, title: str, labels: list[str], body: str = "", pull: bool = False) -> dict:
    """An open issue (or pull request) numbered next; returns it."""
    state: RepoState = fake.state
    number = state.next_number
    state.next_number += 1
    issue = {
        "number": number,
        "title": title,
        "body": body,
        "state": "open",
        "labels": [{"name": n} for n in labels],
        "html_url": f"https://github.com/{fake.repo}/{'pull' if pull else 'issues'}/{number}",
    }
    if pull:
        issue["pull_request"] = {"url": f"{fake.url}/repos/{fake.repo}/pulls/{number}"}
    state.issues[number] = issue
    return issue


def _unprocessable(message: str, code: str = "invalid") -> tuple:
    return 422, {}, {"message": "Validation Failed", "errors": [{"code": code, "message": message}]}


def _body_error(payload: Any, required: tuple[str, ...]) -> tuple | None:
    if not isinstance(payload, dict):
        return 400, {}, {"message": "Problems parsing JSON"}
    missing = [k for k in required if not isinstance(payload.get(k), str) or not payload[k]]
    if missing:
        return _unprocessable(f"missing {missing}", "missing_field")
    body = payload.get("body")
    if isinstance(body, str) and len(body) > MAX_BODY:
        return _unprocessable("body is too long (maximum is 65536 characters)", "custom")
    return None


def handle(fake: Any, method: str, route: list[str], query: dict, payload: Any) -> tuple:
    """(status, headers, body) for a path under /repos/{owner}/{repo} split into ``route``."""
    state: RepoState = fake.state
    if method != "GET" and fake.read_only:
        return 403, {}, FORBIDDEN
    with fake._lock:
        if method == "GET" and route == [""]:
            return 200, {}, {"full_name": fake.repo, "default_branch": state.default_branch}
        if route == ["issues"] and method == "GET":
            return _list_issues(fake, query)
        if route == ["issues"] and method == "POST":
            if error := _body_error(payload, ("title",)):
                return error
            labels = [str(x) for x in payload.get("labels") or []]
            return 201, {}, add_issue(fake, payload["title"], labels, payload.get("body") or "")
        if len(route) == 2 and route[0] == "issues" and route[1].isdigit() and method == "PATCH":
            issue = state.issues.get(int(route[1]))
            if issue is None:
                return 404, {}, {"message": "Not Found", "status": "404"}
            if error := _body_error(payload, ()):
                return error
            issue.update({k: payload[k] for k in ("body", "title", "state") if k in payload})
            return 200, {}, issue
        if route == ["labels"] and method == "POST":
            if error := _body_error(payload, ("name",)):
                return error
            if payload["name"].lower() in {n.lower() for n in state.labels}:
                return _unprocessable("Label already exists", "already_exists")
            state.labels[payload["name"]] = payload
            return 201, {}, payload
        if route[:2] == ["actions", "workflows"] and route[3:] == ["dispatches"]:
            if method != "POST" or len(route) != 4:
                return 404, {}, {"message": "Not Found"}
            if unquote(route[2]) not in state.workflows:
                return 404, {}, {"message": "Not Found", "status": "404"}
            if error := _body_error(payload, ("ref",)):
                return error
            state.dispatches.append({"workflow": unquote(route[2]), **payload})
            return 204, {}, ""
        if route == ["pulls"] and method == "POST":
            return _create_pull(fake, payload)
        if route[:3] == ["git", "ref", "tags"] and method == "GET":
            tag = unquote("/".join(route[3:]))
            if tag not in state.tags:
                return 404, {}, {"message": "Not Found", "status": "404"}
            return 200, {}, {"ref": f"refs/tags/{tag}", "object": {"type": "commit"}}
        if route == ["releases"] and method == "POST":
            if error := _body_error(payload, ("tag_name",)):
                return error
            if any(r["tag_name"] == payload["tag_name"] for r in state.releases):
                return _unprocessable("Release.tag_name already exists", "already_exists")
            release = {**payload, "html_url": f"https://github.com/{fake.repo}/releases/tag/"
                       f"{payload['tag_name']}"}  # fmt: skip
            state.releases.append(release)
            return 201, {}, release
    return 404, {}, {"message": "Not Found", "status": "404"}


def _create_pull(fake: Any, payload: Any) -> tuple:
    state: RepoState = fake.state
    if error := _body_error(payload, ("title", "head", "base")):
        return error
    head, base = payload["head"], payload["base"]
    branches = set(state.branches)
    if state.git_remote is not None:
        listed = subprocess.run(
            ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads"],
            cwd=state.git_remote, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        branches = set(listed.split())
    if head not in branches or base not in branches:
        return _unprocessable(f"branch {head if head not in branches else base} not found")
    if head == base:
        return _unprocessable(f"No commits between {base} and {head}")
    for issue in state.issues.values():
        if issue.get("head") == head and issue["state"] == "open":
            return _unprocessable(f"A pull request already exists for {fake.repo}:{head}.")
    pull = add_issue(fake, payload["title"], [], payload.get("body") or "", pull=True)
    pull.update(head=head, base=base)
    return 201, {}, pull


def _list_issues(fake: Any, query: dict) -> tuple:
    state: RepoState = fake.state
    per_page = min(int(query.get("per_page", ["30"])[0]), fake.max_per_page)
    page = int(query.get("page", ["1"])[0])
    wanted = [w for w in query.get("labels", [""])[0].split(",") if w]
    status = query.get("state", ["open"])[0]
    found = [
        i
        for i in sorted(state.issues.values(), key=lambda i: -i["number"])  # newest first
        if (status == "all" or i["state"] == status)
        and all(w in {lab["name"] for lab in i["labels"]} for w in wanted)
    ]
    pages = max(1, -(-len(found) // per_page))
    items = found[(page - 1) * per_page : page * per_page]
    base = f"{fake.url}/repos/{fake.repo}/issues"
    rest = f"labels={','.join(wanted)}&state={status}&per_page={per_page}"
    links = []
    if page < pages:
        links.append(f'<{base}?{rest}&page={page + 1}>; rel="next"')
        links.append(f'<{base}?{rest}&page={pages}>; rel="last"')
    return 200, ({"Link": ", ".join(links)} if links else {}), items
