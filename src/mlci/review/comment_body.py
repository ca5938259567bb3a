"""Assemble the comment's body: the hidden marker, then the checked and rewritten report, cut to
fit GitHub's limit.

The body never exceeds GitHub's 65,536-character limit (``MAX_BODY``, counted in UTF-16 code
units by ``units``): a longer report is cut by ``cut_report`` at a line that leaves no open code
fence, half table or cut mermaid diagram, and ``build_body`` adds a note linking to the full
report in the workflow run. ``MARKER`` is how the poster finds its own earlier comment. Standard
library only.
"""

from __future__ import annotations

import re

from mlci.review.comment_links import LinkPolicy, rewrite_report

MARKER = "<!-- mlci-model-report -->"
MAX_BODY = 65_536  # GitHub's limit on a comment body, in characters

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_DELIMITER_ROW = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
CUT_NOTE = (
    "\n> [!NOTE]\n"
    "> ✂️ This report was cut to fit GitHub's comment limit of 65,536 characters: it stops "
    "after line {shown:,} of {total:,}. The full report (`report.md`) and the plots are in the "
    "`model-report` artifact of [the workflow run]({run_url}).\n"
)


def units(text: str) -> int:
    """Length as GitHub may count it: UTF-16 code units (never fewer than characters)."""
    return len(text.encode("utf-16-le")) // 2


def cut_report(report: str, budget: int) -> tuple[str, int | None]:
    """Return (report, None) if it fits in ``budget``; else (a prefix ending at a line boundary
    with any open code fence and <details> closed, number of lines kept). A cut never falls
    between a table's header and its delimiter row or inside a mermaid diagram (a cut diagram
    does not render): it moves back before them."""
    if units(report) <= budget:
        return report, None
    lines = report.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    fence: tuple[str, int, bool] | None = None  # (fence characters, length, is mermaid)
    details = 0
    size = 0
    best: tuple[int, str] = (0, "")
    for i in range(len(lines) + 1):
        header_split = (
            i < len(lines) and i > 0 and "|" in lines[i - 1] and _DELIMITER_ROW.match(lines[i])
        )
        safe = not header_split and not (fence and fence[2])
        if safe:
            closers = (fence[0] * fence[1] + "\n" if fence else "") + "</details>\n" * details
            if size + units(closers) <= budget:
                best = (i, closers)
        if i == len(lines) or size > budget:
            break
        line = lines[i]
        size += units(line)
        stripped = line.rstrip("\r\n")
        if fence is None:
            opened = _FENCE_OPEN.match(stripped)
            if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
                info = opened.group(2).strip().split()
                fence = (
                    opened.group(1)[0],
                    len(opened.group(1)),
                    bool(info) and info[0] == "mermaid",
                )
            else:
                lowered = stripped.lower()
                details = max(0, details + lowered.count("<details") - lowered.count("</details"))
        elif re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{fence[1]},}}[ \t]*$", stripped):
            fence = None
    kept, closers = best
    return "".join(lines[:kept]) + closers, kept


def build_body(report: str, policy: LinkPolicy) -> str:
    """Marker + checked, rewritten report (+ a note if it had to be cut): ≤ MAX_BODY."""
    text = rewrite_report(report, policy)
    head = MARKER + "\n"
    total = text.count("\n") + (0 if text.endswith("\n") else 1)
    worst_note = CUT_NOTE.format(shown=total, total=total, run_url=policy.run_url)
    fitted, kept = cut_report(text, MAX_BODY - units(head))
    if kept is not None:
        fitted, kept = cut_report(text, MAX_BODY - units(head) - units(worst_note) - 1)
        assert kept is not None
        fitted += CUT_NOTE.format(shown=kept, total=total, run_url=policy.run_url)
    body = head + fitted
    assert units(body) <= MAX_BODY, units(body)
    return body
