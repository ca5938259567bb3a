"""Which commits a report compares, labelled the way a reviewer recognises them.

On a ``pull_request`` run, GitHub checks out a merge commit of the pull request into its base;
nobody knows that commit's sha. The report names the pull request's HEAD commit instead (from the
event payload, ``GITHUB_EVENT_PATH``) and the base commit it was compared with, both linked to
``{GITHUB_SERVER_URL}/{GITHUB_REPOSITORY}/commit/{sha}``. Outside Actions (``make report``) it
names the local HEAD and the base ref, without links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlci.github import commit_url, pull_request_event

SHA = re.compile(r"^[0-9a-f]{40}$")
SHORT = 7  # what GitHub shows


def _sha(value: object) -> str | None:
    return value if isinstance(value, str) and SHA.match(value) else None


@dataclass(frozen=True)
class Commit:
    sha: str | None
    url: str | None = None

    @property
    def short(self) -> str:
        return self.sha[:SHORT] if self.sha else "uncommitted"

    def markdown(self) -> str:
        """`abc1234`, linked to the commit page when the repository is known."""
        return f"[`{self.short}`]({self.url})" if self.url else f"`{self.short}`"


@dataclass(frozen=True)
class Revisions:
    head: Commit  # the pull request's head commit, or the local HEAD
    base: Commit  # the commit whose committed results the report compares against
    base_name: str  # the base branch (pull request) or the ref given with --base
    pr_number: int | None = None
    checked_out: str | None = None  # the commit the pipeline ran on, when not ``head``

    def headline(self) -> str:
        if self.pr_number is not None:
            head = f"Pull request #{self.pr_number} at {self.head.markdown()}"
        else:
            head = f"This branch at {self.head.markdown()}"
        name = self.base_name.replace("`", "'")
        return f"{head} against `{name}` at {self.base.markdown()}."


def revisions(base_ref: str, base_sha: str | None, checked_out: str | None) -> Revisions:
    """Labels for a comparison of ``checked_out`` (this run's results) with ``base_sha``."""
    pr = pull_request_event()
    head_sha = _sha(((pr or {}).get("head") or {}).get("sha")) if pr else None
    if head_sha is None:  # not a pull_request run: the local HEAD is what was measured
        return Revisions(
            head=Commit(checked_out, commit_url(checked_out)),
            base=Commit(base_sha, commit_url(base_sha)),
            base_name=base_ref,
        )
    number = pr.get("number") if pr else None
    base_name = ((pr or {}).get("base") or {}).get("ref")
    return Revisions(
        head=Commit(head_sha, commit_url(head_sha)),
        base=Commit(base_sha, commit_url(base_sha)),
        base_name=base_name if isinstance(base_name, str) and base_name else base_ref,
        pr_number=number if isinstance(number, int) and not isinstance(number, bool) else None,
        checked_out=checked_out if checked_out != head_sha else None,
    )
