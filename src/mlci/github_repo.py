"""The monitoring and retraining loop's writes to one GitHub repository, through the project's one
client (:mod:`mlci.github_api`; standard library only): the monitoring issue (found by its label
on every page, created, edited, commented on), its label, the retrain workflow's dispatch, the
retraining pull request and the GitHub Release with the model card.

Every failure is a ``GitHubError`` with one line naming the action and what to do: 401 a bad
token, 403 the permission the token lacks (workflow ``permissions:`` or a fine-grained token),
404 a wrong repository, API URL or workflow file, 422 what GitHub refused. Bodies are cut to
GitHub's 65,536-character limit with a note saying where the whole text is. A creating POST is
never repeated blindly: after a failure that may have been carried out, the issue is looked up
again first.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

from mlci.errors import UserError
from mlci.github_api import ApiError, GitHub, fit_body, from_env


class GitHubError(UserError):
    """A GitHub call failed; the message is one line saying what to do (the CLI prints it)."""


def explain(err: ApiError, action: str, repo: str, permission: str) -> GitHubError:
    """One line for a failed call: what was tried, GitHub's answer, what to check."""
    status = err.status
    if status == 401:
        hint = "the token is invalid or expired: set GITHUB_TOKEN (or GH_TOKEN) to a valid one"
    elif status == 403:
        hint = (
            f"the token lacks `{permission}` on {repo} (the job's `permissions:`, or a "
            "fine-grained token's repository permissions)"
        )
    elif status == 404:
        hint = (
            f"check GITHUB_REPOSITORY ({repo}) and GITHUB_API_URL; a token that cannot see a "
            "private repository also gets 404"
        )
    elif status == 422:
        hint = "GitHub refused the request as invalid"
    else:
        hint = "GitHub or the network failed; try again later" if status else "network error"
    return GitHubError(f"{action}: {err} ({hint})")


@dataclass
class Repo:
    """One repository (``owner/name``) through ``api``. ``run_url``: where the whole text of a
    cut body is (this workflow run), named in the cut note."""

    api: GitHub
    name: str
    run_url: str | None = None

    def _call(
        self,
        method: str,
        path: str,
        payload: object,
        action: str,
        permission: str,
        retry: bool = True,
    ) -> Any:
        try:
            return self.api.request(method, f"/repos/{self.name}{path}", payload, retry=retry).data
        except ApiError as err:
            raise explain(err, action, self.name, permission) from None

    def _body(self, text: str) -> str:
        if self.run_url:
            return fit_body(text, f"the whole text is in [the workflow run]({self.run_url})")
        return fit_body(text, "run the command locally for the whole text")

    # ---- issues --------------------------------------------------------------------------

    def find_issue(self, label: str) -> int | None:
        """The oldest open issue carrying ``label`` (pull requests skipped), on any page."""
        query = urllib.parse.urlencode({"labels": label, "state": "open", "per_page": 100})
        path = f"/repos/{self.name}/issues?{query}"
        try:
            numbers = [
                item["number"]
                for item in self.api.pages(path, f"the open issues labelled {label}")
                if isinstance(item, dict)
                and isinstance(item.get("number"), int)
                and "pull_request" not in item
            ]
        except ApiError as err:
            action = f"listing issues labelled {label}"
            raise explain(err, action, self.name, "issues: read") from None
        return min(numbers, default=None)

    def ensure_label(self, name: str, color: str, description: str) -> None:
        """Create the label; one that exists already is left as it is."""
        payload = {"name": name, "color": color, "description": description}
        try:
            self.api.request("POST", f"/repos/{self.name}/labels", payload, retry=False)
        except ApiError as err:
            if err.status == 422 and "already_exists" in str(err):
                return
            raise explain(err, f"creating the label {name}", self.name, "issues: write") from None

    def find_or_create_issue(self, label: str, title: str, body: str) -> tuple[int, bool]:
        """(number, created): the oldest open issue labelled ``label``, or a new one."""
        for attempt in range(3):
            existing = self.find_issue(label)
            if existing is not None:
                return existing, False
            payload = {"title": title, "body": self._body(body), "labels": [label]}
            try:
                data = self.api.request(
                    "POST", f"/repos/{self.name}/issues", payload, retry=False
                ).data
            except ApiError as err:
                # It may have been created before failing: look again, then retry.
                if err.wait is None or attempt == 2:
                    raise explain(err, "opening an issue", self.name, "issues: write") from None
                self.api.sleep(err.wait)
                continue
            return int(data["number"]), True
        raise AssertionError("unreachable")

    def edit_issue(self, number: int, body: str) -> None:
        self._call(
            "PATCH", f"/issues/{number}", {"body": self._body(body)},
            f"editing issue #{number}", "issues: write",
        )  # fmt: skip

    def comment(self, number: int, body: str) -> None:
        self._call(
            "POST", f"/issues/{number}/comments", {"body": self._body(body)},
            f"commenting on #{number}", "issues: write", retry=False,
        )  # fmt: skip

    # ---- workflows, pull requests, releases ------------------------------------------------

    def default_branch(self) -> str:
        data = self._call("GET", "", None, "reading the repository", "contents: read")
        branch = data.get("default_branch") if isinstance(data, dict) else None
        if not isinstance(branch, str) or not branch:
            raise GitHubError(f"reading {self.name}: no default_branch in GitHub's answer")
        return branch

    def dispatch(self, workflow: str, ref: str | None = None, inputs: dict | None = None) -> str:
        """Start ``workflow`` (its file name) on ``ref`` (default: the default branch)."""
        ref = ref or self.default_branch()
        self._call(
            "POST", f"/actions/workflows/{urllib.parse.quote(workflow)}/dispatches",
            {"ref": ref, "inputs": inputs or {}},
            f"dispatching {workflow}", "actions: write", retry=False,
        )  # fmt: skip
        return ref

    def create_pull(self, head: str, base: str, title: str, body: str) -> str:
        """Open a pull request from branch ``head`` into ``base``; returns its web URL."""
        data = self._call(
            "POST", "/pulls",
            {"title": title, "head": head, "base": base, "body": self._body(body)},
            f"opening a pull request from {head} into {base}", "pull-requests: write", retry=False,
        )  # fmt: skip
        return str(data.get("html_url") or data.get("url") or "")

    def create_release(self, tag: str, body: str) -> str:
        """Publish the GitHub Release of an existing tag (never creates the tag: a release is
        only of a commit that was tagged and verified); returns its web URL."""
        quoted = urllib.parse.quote(tag, safe="")
        try:
            self.api.request("GET", f"/repos/{self.name}/git/ref/tags/{quoted}")
        except ApiError as err:
            if err.status == 404:
                raise GitHubError(
                    f"creating the release {tag}: the tag {tag} is not on GitHub ({self.name}): "
                    "push the tag first"
                ) from None
            raise explain(err, f"reading the tag {tag}", self.name, "contents: read") from None
        data = self._call(
            "POST", "/releases",
            {"tag_name": tag, "name": tag, "body": self._body(body), "draft": False},
            f"creating the release {tag}", "contents: write", retry=False,
        )  # fmt: skip
        return str(data.get("html_url") or data.get("url") or "")


def connect(run_url: str | None = None) -> Repo:
    """The repository named by the environment (:func:`mlci.github_api.from_env`)."""
    try:
        api, name = from_env()
    except ApiError as err:
        raise GitHubError(str(err)) from None
    return Repo(api, name, run_url)
