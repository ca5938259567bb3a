"""The pull-request report: this branch against a base ref, as one markdown document.

``mlci report --base REF`` writes ``reports/pr/report.md`` (plus ``verdict.json`` and PNG plots)
from the working tree's results and the base ref's committed results. The same document is the
CML comment on a pull request, so it reads well without images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlci import files, history, paths
from mlci.config import GATE_METRICS, LOWER_IS_BETTER, GateConfig, load_params, parse_params
from mlci.errors import UserError
from mlci.review import gate

OUT_DIR = Path("reports/pr")
WATERMARK = "mlci model report"
CURVES = {"roc": paths.ROC_DIR, "precision_recall": paths.PR_DIR}


@dataclass
class Side:
    """One side of the comparison: the base ref, or this branch's working tree."""

    label: str
    sha: str | None
    metrics: dict | None = None
    slices: dict | None = None
    cost: dict | None = None
    validation: dict | None = None
    ingest: dict | None = None
    params: dict | None = None
    lock: dict | None = None
    lock_text: str | None = None
    confusion: pd.DataFrame | None = None
    curves: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    importance: pd.DataFrame | None = None


def _csv(text: str | None) -> pd.DataFrame | None:
    if not text:
        return None
    from io import StringIO

    return pd.read_csv(StringIO(text))


def current_side() -> Side:
    sha = history.git("rev-parse", "HEAD")
    lock_text = Path("dvc.lock").read_text() if Path("dvc.lock").is_file() else None
    side = Side(
        label="this branch",
        sha=sha.strip() if sha else None,
        metrics=history.read_json(paths.METRICS),
        slices=history.read_json(paths.SLICES),
        cost=history.read_json(paths.COST),
        validation=history.read_json(paths.VALIDATION_JSON),
        ingest=history.read_json(paths.INGEST_REPORT),
        params=history.read_yaml("params.yaml"),
        lock=yaml.safe_load(lock_text) if lock_text else None,
        lock_text=lock_text,
    )
    side.confusion = pd.read_csv(paths.CONFUSION) if paths.CONFUSION.is_file() else None
    side.importance = pd.read_csv(paths.IMPORTANCE) if paths.IMPORTANCE.is_file() else None
    for name, folder in CURVES.items():
        side.curves[name] = {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}
    return side


def base_side(ref: str) -> Side:
    sha = history.resolve(ref)
    lock_text = history.show(sha, "dvc.lock")
    side = Side(
        label=ref,
        sha=sha,
        metrics=history.show_json(sha, paths.METRICS),
        slices=history.show_json(sha, paths.SLICES),
        cost=history.show_json(sha, paths.COST),
        validation=history.show_json(sha, paths.VALIDATION_JSON),
        ingest=history.show_json(sha, paths.INGEST_REPORT),
        params=history.show_yaml(sha, "params.yaml"),
        lock=yaml.safe_load(lock_text) if lock_text else None,
        lock_text=lock_text,
    )
    side.confusion = _csv(history.show(sha, paths.CONFUSION))
    side.importance = _csv(history.show(sha, paths.IMPORTANCE))
    for name, folder in CURVES.items():
        listing = history.git("ls-tree", "--name-only", f"{sha}:{folder.as_posix()}") or ""
        side.curves[name] = {
            Path(f).stem: _csv(history.show(sha, folder / f))
            for f in listing.split()
            if f.endswith(".csv")
        }
    return side


@dataclass
class Comparison:
    base: Side
    current: Side
    base_metrics: dict | None  # base metrics on the same test set as this branch, if possible
    gate_config: GateConfig
    verdict: gate.Verdict
    notes: list[str]


def compare(ref: str, stale: dict[str, list[str]] | None = None) -> Comparison:
    base, current = base_side(ref), current_side()
    notes: list[str] = []
    base_metrics, note = comparable_base_metrics(base, current)
    if note:
        notes.append(note)
    cfg, cfg_note = gate_config(base)
    if cfg_note:
        notes.append(cfg_note)
    if stale is None:
        stale = history.stale_stages()
    verdict = gate.decide(cfg, current.metrics, base_metrics, current.validation, stale, notes)
    return Comparison(base, current, base_metrics, cfg, verdict, verdict.notes)


def comparable_base_metrics(base: Side, current: Side) -> tuple[dict | None, str | None]:
    """Base metrics measured on this branch's test set, as far as that can be had."""
    if not base.metrics:
        return None, None
    test = paths.TEST.as_posix()
    base_test = history.lock_outs(base.lock).get(test)
    current_test = history.lock_outs(current.lock).get(test)
    if base_test and base_test == current_test:
        return base.metrics, None
    model_md5 = history.lock_outs(base.lock).get(paths.MODEL.as_posix())
    cached = history.cached(model_md5) if model_md5 else None
    if cached and paths.TEST.is_file():
        from mlci import artifacts
        from mlci.pipeline import evaluate
        from mlci.pipeline.train import features_and_target

        X, y = features_and_target(pd.read_parquet(paths.TEST))
        model = artifacts.load_model(cached)
        classes = [str(c) for c in model.classes_]
        rescored = {"model": evaluate.quality(y, model.predict_proba(X), classes)}
        return rescored, (
            "the test set changed, so the base model was re-scored on this branch's test set "
            "(from the DVC cache)"
        )
    return base.metrics, (
        "⚠️ the test set changed and the base model is not in the DVC cache: the base metrics "
        "shown were measured on the base branch's own test set"
    )


def gate_config(base: Side) -> tuple[GateConfig, str | None]:
    """The gate thresholds come from the base branch, so a pull request cannot loosen them."""
    if base.params and "gate" in base.params:
        try:
            return parse_params(base.params, Path(f"{base.label}:params.yaml")).gate, None
        except UserError:
            pass
    current = load_params().gate
    return current, "the base branch has no usable gate settings: used this branch's `gate:`"


# --------------------------------------------------------------------------- rendering


def render(c: Comparison, images: dict[str, str] | None = None, run_url: str | None = None) -> str:
    v = c.verdict
    mark = "✅" if v.passed else "❌"
    parts = [
        f"## {mark} Model gate {'passed' if v.passed else 'FAILED'}",
        "",
        f"**{v.summary}**",
        "",
        f"This branch (`{_short(c.current.sha)}`) against `{c.base.label}` "
        f"(`{_short(c.base.sha)}`).",
    ]
    parts += [f"> {n}" for n in c.notes]
    parts += _metrics_section(c)
    parts += _params_section(c)
    parts += _data_section(c)
    parts += _slices_section(c)
    parts += _confusion_section(c)
    parts += _plots_section(images or {})
    parts += _cost_section(c)
    parts += _provenance_section(c, run_url)
    return "\n".join(parts) + "\n"


def _short(sha: str | None) -> str:
    return sha[:8] if sha else "uncommitted"


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _delta(new: Any, old: Any, lower_better: bool = False, digits: int = 4) -> str:
    if not isinstance(new, int | float) or not isinstance(old, int | float):
        return "—"
    d = new - old
    if abs(d) < 10 ** -(digits + 1):
        return "0"
    better = d < 0 if lower_better else d > 0
    return f"{d:+.{digits}f} ({'better' if better else 'worse'})"


def _metrics_section(c: Comparison) -> list[str]:
    cur = (c.current.metrics or {}).get("model", {})
    base = (c.base_metrics or {}).get("model", {})
    checks: dict[str, list[gate.Check]] = {}
    for chk in c.verdict.checks:
        if chk.metric:
            checks.setdefault(chk.metric, []).append(chk)
    out = [
        "",
        "### Metrics (test set)",
        "",
        "| metric | base | this branch | change | gate |",
        "|---|---:|---:|---:|:---:|",
    ]
    for m in GATE_METRICS:
        marks = checks.get(m, [])
        gate_mark = "" if not marks else ("✅" if all(x.passed for x in marks) else "❌")
        out.append(
            f"| {m} | {_num(base.get(m))} | {_num(cur.get(m))} | "
            f"{_delta(cur.get(m), base.get(m), m in LOWER_IS_BETTER)} | {gate_mark} |"
        )
    baseline = (c.current.metrics or {}).get("baseline", {})
    if baseline:
        shown = ", ".join(f"{m} {_num(baseline.get(m))}" for m in ("f1_macro", "log_loss"))
        out += ["", f"Baseline model on this branch: {shown}."]
    out += ["", f"<details><summary>All gate checks ({len(c.verdict.checks)})</summary>", ""]
    out += ["| check | result | detail |", "|---|:---:|---|"]
    for chk in c.verdict.checks:
        label = chk.kind + (f" · {chk.metric}" if chk.metric else "")
        out.append(f"| {label} | {'✅' if chk.passed else '❌'} | {chk.detail} |")
    out += ["", "</details>"]
    per_class_cur = (c.current.metrics or {}).get("model", {}).get("per_class", {})
    if per_class_cur:
        per_class_base = base.get("per_class", {})
        out += ["", "<details><summary>Per class</summary>", ""]
        out += [
            "| class | precision | recall | base precision | base recall |",
            "|---|---:|---:|---:|---:|",
        ]
        for cls, m in per_class_cur.items():
            b = per_class_base.get(cls, {})
            out.append(
                f"| {cls} | {_num(m.get('precision'))} | {_num(m.get('recall'))} | "
                f"{_num(b.get('precision'))} | {_num(b.get('recall'))} |"
            )
        out += ["", "</details>"]
    return out


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def params_diff(base: dict | None, current: dict | None) -> list[tuple[str, Any, Any]]:
    b, c = flatten(base or {}), flatten(current or {})
    missing = object()
    rows = []
    for key in sorted(set(b) | set(c)):
        old, new = b.get(key, missing), c.get(key, missing)
        if old != new:
            rows.append((key, None if old is missing else old, None if new is missing else new))
    return rows


def _params_section(c: Comparison) -> list[str]:
    rows = params_diff(c.base.params, c.current.params)
    out = ["", "### Params", ""]
    if not rows:
        return [*out, "No parameter changed."]
    out += ["| param | base | this branch |", "|---|---|---|"]
    for key, old, new in rows:
        old_s = "*(absent)*" if old is None else f"`{old}`"
        new_s = "*(removed)*" if new is None else f"`{new}`"
        out.append(f"| `{key}` | {old_s} | {new_s} |")
    return out


def _balance(validation: dict | None) -> str:
    counts = (validation or {}).get("target_counts") or {}
    total = sum(counts.values())
    if not total:
        return "—"
    return ", ".join(f"{k} {v / total:.1%}" for k, v in counts.items())


def _data_section(c: Comparison) -> list[str]:
    bi, ci = c.base.ingest or {}, c.current.ingest or {}
    changed = bi.get("source_sha256") != ci.get("source_sha256") or bi.get("source") != ci.get(
        "source"
    )
    out = [
        "",
        "### Data",
        "",
        f"Data {'**changed**' if changed else 'unchanged'} against base.",
        "",
        "| | base | this branch |",
        "|---|---|---|",
        f"| source | `{bi.get('source', '—')}` | `{ci.get('source', '—')}` |",
        f"| sha256 | `{(bi.get('source_sha256') or '—')[:16]}` | "
        f"`{(ci.get('source_sha256') or '—')[:16]}` |",
        f"| rows read → kept | {bi.get('rows_read', '—')} → {bi.get('rows_out', '—')} | "
        f"{ci.get('rows_read', '—')} → {ci.get('rows_out', '—')} |",
        f"| class balance | {_balance(c.base.validation)} | {_balance(c.current.validation)} |",
        "",
    ]
    v = c.current.validation
    if v is None:
        out.append("Data contract: no validation report (the pipeline did not reach validate).")
    elif v.get("valid"):
        out.append(f"Data contract: ✅ passed ({v.get('rows')} rows).")
    else:
        from mlci.pipeline.validate import summary_markdown

        out.append(summary_markdown(v).replace("**Data contract: FAILED**", "Data contract: ❌"))
    return out


def _slices_section(c: Comparison) -> list[str]:
    cur, base = c.current.slices or {}, c.base.slices or {}
    if not cur:
        return []
    out = ["", "### Slices (macro F1 per value)", ""]
    worst = min(
        ((col, val, m["f1_macro"]) for col, vals in cur.items() for val, m in vals.items()),
        key=lambda t: t[2],
        default=None,
    )
    if worst:
        out += [f"Worst slice: **{worst[0]} = {worst[1]}** (macro F1 {worst[2]:.4f}).", ""]
    out += ["| slice | n | base | this branch | change |", "|---|---:|---:|---:|---:|"]
    for col, vals in cur.items():
        for val, m in vals.items():
            b = base.get(col, {}).get(val, {})
            name = f"{col} = {val}"
            if worst and (col, val) == worst[:2]:
                name = f"**{name}** ⚠️"
            out.append(
                f"| {name} | {m['n']} | {_num(b.get('f1_macro'))} | {_num(m['f1_macro'])} | "
                f"{_delta(m['f1_macro'], b.get('f1_macro'))} |"
            )
    return out


def confusion_table(df: pd.DataFrame) -> list[str]:
    labels = sorted(set(df["actual"].astype(str)) | set(df["predicted"].astype(str)))
    table = pd.crosstab(df["actual"].astype(str), df["predicted"].astype(str)).reindex(
        index=labels, columns=labels, fill_value=0
    )
    out = ["| actual \\ predicted | " + " | ".join(labels) + " |"]
    out.append("|---|" + "---:|" * len(labels))
    for a in labels:
        cells = [f"**{table.loc[a, p]}**" if a == p else str(table.loc[a, p]) for p in labels]
        out.append(f"| {a} | " + " | ".join(cells) + " |")
    return out


def _confusion_section(c: Comparison) -> list[str]:
    if c.current.confusion is None:
        return []
    out = [
        "",
        "### Confusion matrix (this branch, test set)",
        "",
        *confusion_table(c.current.confusion),
    ]
    if c.base.confusion is not None:
        out += ["", "<details><summary>Base</summary>", "", *confusion_table(c.base.confusion)]
        out += ["", "</details>"]
    return out


def _plots_section(images: dict[str, str]) -> list[str]:
    if not images:
        return []
    out = ["", "### Plots (base dashed, this branch solid)", ""]
    out += [f"![{title}]({path})" for title, path in images.items()]
    return out


def _cost_section(c: Comparison) -> list[str]:
    cur, base = c.current.cost or {}, c.base.cost or {}
    rows = [
        ("training time (s)", "fit_seconds", True, 3),
        ("model size (bytes)", "model_size_bytes", True, 0),
        ("predict 1 row (ms)", "predict_1_row_ms", True, 3),
        ("predict 1,000 rows (ms)", "predict_1000_rows_ms", True, 3),
    ]
    out = ["", "### Cost", "", "| | base | this branch | change |", "|---|---:|---:|---:|"]
    for label, key, lower, digits in rows:
        out.append(
            f"| {label} | {_num(base.get(key), digits)} | {_num(cur.get(key), digits)} | "
            f"{_delta(cur.get(key), base.get(key), lower, digits)} |"
        )
    out += ["", "Timings are measured on the machine that ran the pipeline and vary run to run."]
    return out


def _provenance_section(c: Comparison, run_url: str | None) -> list[str]:
    lock_digest = history.text_digest(c.current.lock_text)
    data = (c.current.ingest or {}).get("source_sha256")
    out = [
        "",
        "### Provenance",
        "",
        f"- commit: `{c.current.sha or 'uncommitted'}` (base `{c.base.sha}`)",
        f"- dvc.lock sha256: `{lock_digest or '—'}`",
        f"- data sha256: `{data or '—'}`",
    ]
    if run_url:
        out.append(f"- workflow run: {run_url}")
    return out


def default_run_url() -> str | None:
    server, repo, run = (
        os.environ.get("GITHUB_SERVER_URL"),
        os.environ.get("GITHUB_REPOSITORY"),
        os.environ.get("GITHUB_RUN_ID"),
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


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
        from mlci.review import charts

        drawn = charts.draw(c.base, c.current, out_dir)
    files.write_text(out_dir / "report.md", render(c, drawn, default_run_url()))
    verdict = {**c.verdict.to_dict(), "base": c.base.label, "base_sha": c.base.sha, **(extra or {})}
    files.write_json(out_dir / "verdict.json", verdict)
    return c


def write_pr_info(out_dir: Path) -> None:
    """On a pull_request run, record which pull request and commit the report is for."""
    event_path = os.environ.get("GITHUB_EVENT_PATH")
    event = history.read_json(event_path) if event_path else None
    pr = (event or {}).get("pull_request")
    if pr:
        info = {"pr_number": pr["number"], "head_sha": pr["head"]["sha"]}
        files.write_json(out_dir / "pr.json", info)
