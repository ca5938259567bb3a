"""The pull-request report: this branch against a base ref, as one markdown document.

``mlci report --base REF`` writes ``reports/pr/report.md`` (plus ``verdict.json`` and PNG plots)
from the working tree's results and the base ref's committed results; ``mlci pr-check`` also
writes ``pr.json`` (:func:`write_pr_info`) for the comment job. The same document is the
pull-request comment, which has no image host: charts are Mermaid diagrams with tables, and the
PNGs are only linked, each listed in ``pr.json``'s ``attachments``.

The work is split by responsibility:

* :mod:`mlci.review.sides`: read each side's results (working tree, or ``git show`` of the base);
* :mod:`mlci.review.contracts`: what each side's model was trained on, and what changed;
* :mod:`mlci.review.compare`: compare them and decide the gate (:func:`compare`);
* :mod:`mlci.review.paired` and :mod:`mlci.review.noise`: both models on the same test rows,
  each metric's change with its 95% paired-bootstrap interval, the rows that flipped;
* :mod:`mlci.review.revisions`: which commits to name, and their links;
* :mod:`mlci.review.markdown` (with :mod:`~mlci.review.headline` and
  :mod:`~mlci.review.sections`): the document;
  :mod:`mlci.review.mermaid` and :mod:`mlci.review.residuals`: its charts;
* :mod:`mlci.review.charts`: the PNG plots for the artifact;
* this module: write the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlci import files, github
from mlci.github import pull_request_event
from mlci.review.compare import Comparison, compare
from mlci.review.markdown import render
from mlci.review.revisions import SHA

__all__ = ["OUT_DIR", "attachments", "compare", "write", "write_pr_info"]

OUT_DIR = Path("reports/pr")
# Every PNG charts.draw may write (by task), so none from an earlier run is left behind.
CHART_FILES = ("roc.png", "precision_recall.png", "actual_vs_predicted.png", "importance.png")


def attachments(out_dir: Path) -> list[str]:
    """The files the report in ``out_dir`` links: the PNGs :func:`write` drew (it links every
    one it draws and deletes the others)."""
    return sorted(name for name in CHART_FILES if (out_dir / name).is_file())


def write(
    ref: str,
    out_dir: Path = OUT_DIR,
    images: bool = True,
    stale: dict[str, list[str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Comparison:
    """Build the comparison and write report.md, verdict.json and the plot images."""
    c = compare(ref, stale)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, str] = {}
    if images:
        from mlci.review import charts  # matplotlib: only when drawing

        drawn = charts.draw(c.base, c.current, out_dir)
    for name in CHART_FILES:  # no stale PNG from an earlier run left in the artifact
        if name not in drawn.values():
            (out_dir / name).unlink(missing_ok=True)
    files.write_text(out_dir / "report.md", render(c, drawn, github.run_url()))
    verdict = {
        **c.verdict.to_dict(),
        "base": c.base.label,
        "base_sha": c.base.sha,
        "head_sha": c.labels.head.sha,
        # Each metric's change with its 95% interval, and the rows that flipped (or why none).
        "intervals": {m: ch.to_dict() for m, ch in c.intervals.items()},
        "flips": c.flips.to_dict() if c.flips else None,
        "noise": c.noise_note,
        **(extra or {}),
    }
    files.write_json(out_dir / "verdict.json", verdict)
    return c


def write_pr_info(out_dir: Path) -> None:
    """On a pull_request run, record which pull request and commits the report is for, and the
    files it links (the comment poster refuses any file reference not in ``attachments``).

    ``base_sha`` is the commit the report compared with (``verdict.json``), which is what its
    numbers mean; the event's ``pull_request.base.sha`` only when that is missing.
    """
    pr = pull_request_event()
    if not pr:
        return
    verdict_path = out_dir / "verdict.json"
    verdict = files.read_json(verdict_path) if verdict_path.is_file() else None
    candidates = ((verdict or {}).get("base_sha"), (pr.get("base") or {}).get("sha"))
    base_sha = next((s for s in candidates if isinstance(s, str) and SHA.match(s)), None)
    info = {
        "pr_number": pr["number"],
        "head_sha": pr["head"]["sha"],
        "base_sha": base_sha,
        "attachments": attachments(out_dir),
    }
    files.write_json(out_dir / "pr.json", info)
