"""The report's charts on generated data: Mermaid blocks that parse, tables with the same numbers,
labels that cannot break either, and PNGs with the names the report may link."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_recall_curve, roc_curve

from mlci.review import mermaid
from mlci.review.mermaid import curve_section, importance_section, sample_pr, sample_roc

NUMBER = r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)"
STRING = r'"[^"\n%`]*"'


def mermaid_blocks(lines: list[str] | str) -> list[str]:
    text = lines if isinstance(lines, str) else "\n".join(lines)
    return re.findall(r"^```mermaid\n(.*?)^```$", text, flags=re.S | re.M)


def parse_xychart(block: str) -> dict:
    """Check a block against the xychart-beta grammar subset the report uses; return its data.

    (The same blocks were checked with Mermaid 10.9 and 12.3's own parsers while writing this.)
    """
    lines = block.strip("\n").split("\n")
    init = re.fullmatch(r"%%\{init: (.*)\}%%", lines[0])
    assert init, lines[0]
    config = json.loads(init.group(1))
    assert lines[1] in ("xychart-beta", "xychart-beta horizontal")
    out: dict = {"config": config, "horizontal": lines[1].endswith("horizontal"), "plots": []}
    for line in lines[2:]:
        if m := re.fullmatch(rf"    x-axis ({STRING}) \[((?:{STRING}, )*{STRING})\]", line):
            out["x_bands"] = re.findall(r'"([^"]*)"', m.group(2))
        elif m := re.fullmatch(rf"    ([xy])-axis ({STRING}) ({NUMBER}) --> ({NUMBER})", line):
            out[f"{m.group(1)}_range"] = (float(m.group(3)), float(m.group(4)))
        elif m := re.fullmatch(rf"    (line|bar) ({STRING}) \[((?:{NUMBER}, )*{NUMBER})\]", line):
            # Every series is named: Mermaid draws the names as the chart's legend.
            out["plots"].append((m.group(1), [float(v) for v in m.group(3).split(", ")]))
            out.setdefault("names", []).append(m.group(2).strip('"'))
        else:
            raise AssertionError(f"not xychart syntax the report should emit: {line!r}")
    palette = config["themeVariables"]["xyChart"]["plotColorPalette"].split(", ")
    assert len(palette) == len(out["plots"]), "one colour per plot, in drawing order"
    out["colours"] = palette
    return out


def table_rows(lines: list[str], header_start: str) -> list[list[str]]:
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))])
    return rows


def curves(n_classes: int, seed: int, names: list[str] | None = None) -> dict[str, dict]:
    """One-vs-rest ROC and PR points, as the evaluate stage writes them."""
    rng = np.random.default_rng(seed)
    names = names or [f"class{i}" for i in range(n_classes)]
    y = rng.integers(0, n_classes, 300)
    scores = rng.random((300, n_classes)) + np.eye(n_classes)[y] * 0.6
    roc, pr = {}, {}
    for i, name in enumerate(names):
        fpr, tpr, _ = roc_curve(y == i, scores[:, i])
        precision, recall, _ = precision_recall_curve(y == i, scores[:, i])
        roc[name] = pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6)})
        pr[name] = pd.DataFrame({"recall": recall.round(6), "precision": precision.round(6)})
    return {"roc": roc, "precision_recall": pr}


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("kind", ["roc", "precision_recall"])
def test_curve_section_charts_every_class_with_a_table_of_the_same_numbers(
    kind: str, n_classes: int
) -> None:
    base, current = curves(n_classes, 1)[kind], curves(n_classes, 2)[kind]
    lines = curve_section(kind, base, current, "`b`", "`h`")
    blocks = mermaid_blocks(lines)
    assert len(blocks) == n_classes
    x_axis = mermaid.KINDS[kind][3]
    points = table_rows(lines, f"| {x_axis} |")
    assert len(points) == mermaid.GRID_POINTS
    for i, (cls, block) in enumerate(zip(sorted(current), blocks, strict=True)):
        chart = parse_xychart(block)
        assert chart["x_range"] == (0.0, 1.0) and chart["y_range"] == (0.0, 1.0)
        (k1, base_line), (k2, head_line) = chart["plots"]
        assert k1 == k2 == "line" and len(base_line) == len(head_line) == mermaid.GRID_POINTS
        # the table holds exactly the charted numbers: base then this branch, per class
        assert [float(r[1 + 2 * i]) for r in points] == base_line
        assert [float(r[2 + 2 * i]) for r in points] == head_line
        assert f"**{cls}**" in lines
    areas = table_rows(lines, "| class |")
    assert [r[0] for r in areas] == sorted(current)
    assert all(0.0 <= float(r[1]) <= 1.0 and 0.0 <= float(r[2]) <= 1.0 for r in areas)


def test_curve_area_matches_scikit_learn() -> None:
    from sklearn.metrics import auc

    frame = curves(3, 4)["roc"]["class1"]
    assert mermaid.curve_area("roc", frame) == pytest.approx(auc(frame["fpr"], frame["tpr"]))


def test_roc_sampling_follows_the_curve_and_takes_the_top_of_a_step() -> None:
    frame = pd.DataFrame({"fpr": [0.0, 0.0, 0.0, 0.5, 1.0], "tpr": [0.0, 0.2, 0.6, 0.8, 1.0]})
    sampled = sample_roc(frame, np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert sampled == pytest.approx([0.6, 0.7, 0.8, 0.9, 1.0])


def test_pr_sampling_is_the_interpolated_precision() -> None:
    frame = pd.DataFrame({"recall": [1.0, 0.5, 0.5, 0.0], "precision": [0.4, 0.5, 0.9, 1.0]})
    assert sample_pr(frame, np.array([0.0, 0.5, 0.75, 1.0])) == pytest.approx([1, 0.9, 0.4, 0.4])


def test_a_class_missing_on_one_side_gets_one_line_and_a_dash() -> None:
    base = curves(2, 1)["roc"]
    current = curves(3, 2)["roc"]  # class2 is new
    lines = curve_section("roc", base, current)
    charts = [parse_xychart(b) for b in mermaid_blocks(lines)]
    assert [len(c["plots"]) for c in charts] == [2, 2, 1]
    assert charts[2]["colours"] == [mermaid.HEAD_COLOUR]
    assert charts[2]["names"] == ["this branch"]
    assert table_rows(lines, "| class |")[2][1] == "—"
    assert table_rows(lines, "| false positive rate |")[0][5] == "—"


def test_many_classes_are_bounded() -> None:
    data = curves(9, 3)["roc"]
    lines = curve_section("roc", data, curves(9, 5)["roc"])
    assert len(mermaid_blocks(lines)) == mermaid.MAX_CLASSES
    assert len(table_rows(lines, "| class |")) == 9  # every class keeps its area
    assert "3 more class(es) not charted" in "\n".join(lines)
    assert len("\n".join(lines)) < 12_000


AWKWARD = [
    'say "hi"',
    "a[0]: b",
    "x; y %% z",
    "`code`",
    "pipe|cell",
    "<b>bold</b>",
    "![img](../secret.png)",
    "line\nbreak",
    "é, ü — 中文",
    "1.5",
]


def test_awkward_class_names_cannot_break_the_chart_or_the_tables() -> None:
    data = curves(len(AWKWARD), 7, names=AWKWARD)
    other = curves(len(AWKWARD), 8, names=AWKWARD)
    for kind in mermaid.KINDS:
        lines = curve_section(kind, other[kind], data[kind])
        text = "\n".join(lines)
        assert len(mermaid_blocks(lines)) == mermaid.MAX_CLASSES
        for block in mermaid_blocks(lines):
            parse_xychart(block)
        assert "![" not in text and "](" not in text and "<b>" not in text
        areas = table_rows(lines, "| class |")
        assert all(len(r) == 4 for r in areas)  # no extra column from a "|" in a name
        points = table_rows(lines, f"| {mermaid.KINDS[kind][3]} |")
        assert all(len(r) == 1 + 2 * mermaid.MAX_CLASSES for r in points)


@pytest.mark.parametrize("value", [*AWKWARD, "", "a" * 200])
def test_mermaid_labels_are_always_one_clean_string(value: str) -> None:
    quoted = mermaid.label(value)
    assert re.fullmatch(STRING, quoted)
    assert len(quoted) <= mermaid.MAX_LABEL + 2


def test_numbers_never_use_exponents_or_negative_zero() -> None:
    assert mermaid.number(1e-7) == "0.000" and mermaid.number(-1e-7) == "0.000"
    assert mermaid.number(12345678.9, 1) == "12345678.9"
    assert mermaid.number(float("nan")) == "0"
    assert mermaid.signed(0.00001) == "0" and mermaid.signed(-0.25) == "-0.2500"


def importance(values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"feature": list(values), "importance": list(values.values())})


def test_importance_is_a_table_sorted_by_this_branch_with_the_change() -> None:
    cur = importance({"c": -0.02, 'a "q"': 0.1, "b: [x]": 0.3})
    base = importance({"b: [x]": 0.2, 'a "q"': 0.15, "c": 0.01})
    lines = importance_section(base, cur, "`b`", "`h`")
    assert mermaid_blocks(lines) == []  # a table, not a zig-zag line over unordered features
    rows = table_rows(lines, "| feature |")
    assert [r[0] for r in rows] == ["b: \\[x\\]", 'a "q"', "c"]  # this branch's order
    assert rows[0][:4] == ["b: \\[x\\]", "0.200", "0.300", "+0.100"]
    assert rows[2][:4] == ["c", "0.010", "-0.020", "-0.030"]
    assert rows[0][4] == "█" * 10 and rows[2][4] == ""
    # The foldout's summary names the largest change.
    assert "largest change b: [x] 0.200 → 0.300" in lines[1]  # HTML: no markdown escapes


def test_importance_without_base_and_with_many_features() -> None:
    cur = importance({f"f{i}": 1.0 / (i + 1) for i in range(40)})
    lines = importance_section(None, cur)
    rows = table_rows(lines, "| feature |")
    assert len(rows) == mermaid.MAX_FEATURES and all(r[1] == "—" for r in rows)
    assert "25 less important feature(s) not shown." in lines
    assert importance_section(None, None) == [] and curve_section("roc", {}, {}) == []


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours."""

    def luminance(colour: str) -> float:
        rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_chart_has_a_legend_and_each_side_keeps_its_colour() -> None:
    """Curves and residuals: every series named after its side (the legend), base always in the
    base colour and this branch in its own, each at least 3:1 against GitHub's light page, its
    dark page and Mermaid's dark panel."""
    from mlci.review import residuals

    data_b, data_h = curves(3, 1), curves(3, 2)
    rng = np.random.default_rng(0)
    actual = rng.normal(150, 30, 200)
    res_b = pd.DataFrame({"actual": actual, "predicted": actual + rng.normal(0, 9, 200)})
    res_h = pd.DataFrame({"actual": actual, "predicted": actual + rng.normal(0, 25, 200)})
    lines = [
        *curve_section("roc", data_b["roc"], data_h["roc"], "`abc1234`", "`def5678`"),
        *curve_section("precision_recall", data_b["precision_recall"], data_h["precision_recall"]),
        *residuals.section(res_b, res_h, "`abc1234`", "`def5678`"),
    ]
    charts = [parse_xychart(b) for b in mermaid_blocks(lines)]
    assert len(charts) == 7
    for chart in charts:
        assert len(chart["names"]) == 2
        assert chart["names"][0].startswith("base") and chart["names"][1].startswith("this branch")
        assert chart["colours"] == [mermaid.BASE_COLOUR, mermaid.HEAD_COLOUR]
    assert charts[0]["names"] == ["base abc1234", "this branch def5678"]
    # ...and in words under each chart, for Mermaid before 11.17 (no legend drawn there).
    key = "Orange: base `abc1234`; blue: this branch `def5678`."
    assert "\n".join(lines).count(key) == 2  # under the ROC charts and the histogram
    for colour in (mermaid.BASE_COLOUR, mermaid.HEAD_COLOUR):
        for background in ("#ffffff", "#0d1117", "#333333"):
            assert contrast(colour, background) >= 3.0, (colour, background)
    assert contrast(mermaid.BASE_COLOUR, mermaid.HEAD_COLOUR) > 1.0


def perfect(classes: list[str], wobble: float = 0.0) -> dict[str, pd.DataFrame]:
    """ROC points of a (nearly) perfect classifier: straight up the left edge."""
    return {
        c: pd.DataFrame({"fpr": [0.0, 0.0, wobble, 1.0], "tpr": [0.0, 1.0 - wobble, 1.0, 1.0]})
        for c in classes
    }


def test_saturated_or_indistinguishable_curves_become_one_line_of_text() -> None:
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    lines = curve_section("roc", perfect(classes), perfect(classes, 0.0004))
    assert mermaid_blocks(lines) == []
    text = "\n".join(lines).strip()
    assert len(text.splitlines()) == 1 and "not charted" in text and "0.999" in text

    # Below saturation but within a pixel of each other (1/224 of the axis): not drawn either.
    assert mermaid.indistinct([0.5, 0.9, 1.0], [0.5, 0.9 + 1 / 300, 1.0])
    assert not mermaid.indistinct([0.5, 0.9, 1.0], [0.5, 0.9 + 1 / 50, 1.0])
    # A class whose curves moved is charted; the flat ones are named in one sentence.
    moved = perfect(classes)
    moved["Chinstrap"] = pd.DataFrame({"fpr": [0.0, 0.0, 0.3, 1.0], "tpr": [0.0, 0.5, 0.9, 1.0]})
    lines = curve_section("roc", perfect(classes), moved)
    assert len(mermaid_blocks(lines)) == 1 and "**Chinstrap**" in lines
    assert "not charted for adelie, gentoo" in "\n".join(lines).lower()


def test_png_charts_use_only_the_names_the_report_may_link(tmp_path: Path) -> None:
    """Classification draws curves and importance, regression actual-vs-predicted and
    importance: together every name the report may link, and nothing else."""
    from mlci.review import charts
    from mlci.review.report import CHART_FILES
    from mlci.review.sides import Side

    base, current = Side("main", "a" * 40), Side("this branch", None)
    base.curves, current.curves = curves(3, 1), curves(3, 2)
    current.curves["roc"]['odd: "name" [1]'] = current.curves["roc"].pop("class0")
    current.importance = importance({"x": 0.2, "y": 0.1})
    drawn = charts.draw(base, current, tmp_path / "classification")
    assert sorted(drawn.values()) == ["importance.png", "precision_recall.png", "roc.png"]

    rng = np.random.default_rng(0)
    actual = rng.normal(150, 30, 100)
    metrics = {"task": "regression", "primary": "r2"}
    base, current = Side("main", "a" * 40, metrics=metrics), Side("this branch", None, metrics)
    base.residuals = pd.DataFrame({"actual": actual, "predicted": actual + rng.normal(0, 9, 100)})
    current.residuals = pd.DataFrame(
        {"actual": actual, "predicted": actual + rng.normal(0, 5, 100)}
    )
    current.importance = importance({"x": 0.9, "y": 0.1})
    reg = charts.draw(base, current, tmp_path / "regression")
    assert sorted(reg.values()) == ["actual_vs_predicted.png", "importance.png"]

    assert sorted({*drawn.values(), *reg.values()}) == sorted(CHART_FILES)
    for folder, names in (("classification", drawn), ("regression", reg)):
        for name in names.values():
            assert (tmp_path / folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_importance_names_the_metric_that_dropped() -> None:
    cur = importance({"age": 1.2, "bmi": 0.7})
    lines = importance_section(None, cur, metric=mermaid.primary_name({"primary": "r2"}))
    assert "Permutation importance (drop in R² when a feature is shuffled)" in lines[1]
    assert mermaid.primary_name({"task": "regression"}) == "R²"
    assert mermaid.primary_name(None) == mermaid.primary_name({"primary": "f1_macro"}) == "macro F1"
