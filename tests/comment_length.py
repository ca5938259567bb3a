"""How tall a posted comment body renders on GitHub, estimated in Python (CI has no browser).

A proxy for bench/render_comment/render.mjs (GitHub-flavoured markdown, GitHub's stylesheet,
Mermaid, headless Chromium, a 900 px column, foldouts closed), calibrated against its renders of
the four bodies in docs/img/ (tests/unit/test_comment_length.py holds it to them): each block's
height from GitHub's stylesheet (16 px text on 24 px lines, about 105 characters to a line,
37 px table rows, margins of 16 px), the contents of a closed <details> not counted.
"""

from __future__ import annotations

import json
import math
import re

SCREEN = 900  # px: one screen, and the comment column's width
LINE, CHARS, MARGIN, ROW = 24, 105, 16, 37.5
HEADINGS = {"## ": 57, "### ": 50}


def _text_lines(text: str, chars: int = CHARS) -> int:
    visible = re.sub(r"<[^>]+>|\]\([^)]*\)|[`*\\]", "", text)
    return max(1, math.ceil(len(visible) / chars))


def estimate_height(body: str) -> float:
    """Estimated rendered height in px, with every foldout closed."""
    height = 0.0
    depth = 0  # open <details>
    paragraph: list[str] = []
    lines = body.splitlines()

    def flush() -> float:
        text = " ".join(paragraph)
        paragraph.clear()
        return _text_lines(text) * LINE + MARGIN if text.strip() else 0.0

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        opens, closes = stripped.count("<details"), stripped.count("</details")
        if opens or closes:
            height += flush()
            if opens and depth == 0:
                summary = re.sub(r"</?(details|summary)[^>]*>", "", stripped)
                height += _text_lines(summary, CHARS - 3) * LINE + MARGIN
            depth += opens - closes
            i += 1
            continue
        if stripped.startswith("```"):
            height += flush()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), i)
            if depth == 0 and stripped == "```mermaid":
                init = re.search(r"%%\{init: (.*)\}%%", lines[i + 1])
                size = json.loads(init.group(1))["xyChart"]["height"] if init else 300
                height += size + MARGIN
            elif depth == 0:
                height += (end - i - 1) * 20 + 2 * MARGIN
            i = end + 1
            continue
        if depth:
            i += 1
            continue
        if not stripped or stripped.startswith("<!--"):
            height += flush()
        elif stripped.startswith("|"):
            height += flush()
            rows = 0
            while i < len(lines) and lines[i].strip().startswith("|"):
                if not re.fullmatch(r"\|[\s:|-]+\|", lines[i].strip()):
                    rows += 1
                i += 1
            height += rows * ROW + MARGIN
            continue
        elif any(stripped.startswith(h) for h in HEADINGS):
            height += flush()
            height += next(v for h, v in HEADINGS.items() if stripped.startswith(h))
        else:
            paragraph.append(stripped.lstrip("> "))
        i += 1
    return height + flush()
