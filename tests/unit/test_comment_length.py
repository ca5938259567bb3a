"""The comment-length proxy (tests/comment_length.py) against real renders: the four sample
comments in docs/img/ were rendered by bench/render_comment/render.mjs (GitHub-flavoured
markdown, GitHub's stylesheet, Mermaid 11.17, headless Chromium, 900 px column, foldouts
closed), which recorded their heights in docs/img/comment-heights.json."""

from __future__ import annotations

import json

import pytest

from tests.comment_length import SCREEN, estimate_height
from tests.helpers import REPO

IMG = REPO / "docs" / "img"
HEIGHTS = json.loads((IMG / "comment-heights.json").read_text())


@pytest.mark.parametrize("name", sorted(HEIGHTS))
def test_the_proxy_is_within_8_percent_of_the_rendered_height(name: str) -> None:
    body = (IMG / f"{name}.md").read_text()
    rendered = HEIGHTS[name]["height_px"]
    assert estimate_height(body) == pytest.approx(rendered, rel=0.08)


def test_the_sample_comments_meet_their_length_budgets() -> None:
    """The example's failing pull request ≤ 3 screens; an unchanged model and a regression
    pull request ≤ 1.5 screens (as rendered)."""
    assert HEIGHTS["example-c001"]["height_px"] <= 3 * SCREEN
    assert HEIGHTS["unchanged"]["height_px"] <= 1.5 * SCREEN
    assert HEIGHTS["diabetes-alpha"]["height_px"] <= 1.5 * SCREEN


def test_closed_foldouts_and_charts_count_as_github_draws_them() -> None:
    chart = '```mermaid\n%%{init: {"xyChart": {"width": 520, "height": 300}}}%%\nxychart-beta\n```'
    folded = f"<details><summary>Charts</summary>\n\n{chart}\n\n</details>"
    assert estimate_height(chart) == pytest.approx(316)
    assert estimate_height(folded) == pytest.approx(40)  # only the summary line shows
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |"
    assert estimate_height(table) == pytest.approx(3 * 37.5 + 16)
