"""The drift report as markdown (``reports/drift/drift.md``) and as a one-screen summary."""

from __future__ import annotations

from typing import Any


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2e}" if p < 0.001 else f"{p:.3f}"


def markdown(report: dict[str, Any]) -> str:
    status = report["status"]
    head = {
        "no_drift": "**Drift: none found**",
        "drift": "**Drift: FOUND**",
        "not_enough_data": "**Drift: not enough data for a verdict**",
    }[status]
    cur, ref, s = report["current"], report["reference"], report["settings"]
    lines = [
        "# Drift report",
        "",
        f"{head} (exit code {report['exit_code']})",
    ]
    if report["reasons"]:
        lines += ["", *(f"- {r}" for r in report["reasons"])]
    lines += [
        "",
        f"Current batch: {cur['rows']} row(s) from {cur['kind'].replace('_', ' ')} "
        f"{', '.join(f'`{p}`' for p in cur['sources'][:5])}"
        + (f" (+{len(cur['sources']) - 5} more)" if len(cur["sources"]) > 5 else "")
        + ".",
        f"Reference: `{ref['path']}` ({ref['rows']} rows"
        + (
            "; the production model's training data)"
            if ref.get("is_model_training_data")
            else (
                "; NOT the data the production model was trained on)"
                if ref.get("is_model_training_data") is False
                else ")"
            )
        )
        + ".",
    ]
    cleaning = cur.get("cleaning")
    if cleaning:
        fixes = [f"{name.replace('_', ' ')}: {n}" for name, n in cleaning["fixes"].items() if n]
        lines.append(
            f"Cleaned as training data is (`src/project/cleaning.py`): {cleaning['rows_read']} "
            f"row(s) read, {cleaning['rows_kept']} kept"
            + (f"; {'; '.join(fixes)}" if fixes else "; nothing to fix")
            + "."
        )
    if cur["kind"] == "prediction_log":
        lines.append(
            f"Log lines read: {cur['lines_read']}; malformed and skipped: {cur['malformed_lines']}"
            + (
                " (" + "; ".join(f"{n}× {r}" for r, n in cur["malformed_reasons"].items()) + ")"
                if cur["malformed_lines"]
                else ""
            )
            + "."
        )
        if cur.get("model_versions"):
            versions = ", ".join(f"`{v}` ({n})" for v, n in cur["model_versions"].items())
            lines.append(f"Model versions in the log: {versions}.")
        if cur.get("time_range"):
            lines.append(f"Time range: {cur['time_range'][0]} to {cur['time_range'][1]}.")
    columns = report.get("columns") or []
    if columns:
        lines += [
            "",
            "| column | test | n (ref / cur) | statistic | p | corrected p | PSI | drift |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for c in columns:
            if c["status"] != "tested":
                note = c.get("note") or "fewer values than monitor.min_batch_size"
                lines.append(f"| {c['column']} | - | - | - | - | - | - | not tested: {note} |")
                continue
            verdict = "**yes**" if c["drifted"] else "no"
            if c.get("significant") and not c["drifted"]:
                verdict = "no (significant, PSI below monitor.min_psi)"
            lines.append(
                f"| {c['column']} | {c['test']} | {c['n_reference']} / {c['n_current']} | "
                f"{c['statistic']:.3f} | {_fmt_p(c['p_value'])} | {_fmt_p(c['p_adjusted'])} | "
                f"{c['psi']:.3f} ({c['psi_level']}) | {verdict} |"
            )
        lines += [
            "",
            f"All tests of this run are one family: p-values corrected with {s['correction']}, "
            f"drift where the corrected p ≤ {s['alpha']} and PSI ≥ {s['min_psi']}. PSI levels: "
            f"moderate ≥ {s['psi_moderate']}, major ≥ {s['psi_major']}.",
        ]
    if report.get("confidence"):
        conf = report["confidence"]
        lines += [
            "",
            f"Mean top-class probability: {conf['mean_top_probability_current']:.3f} in the "
            f"batch, {conf['mean_top_probability_reference']:.3f} on the reference.",
        ]
    contract_ = report["contract"]
    lines.append("")
    if contract_["valid"]:
        lines.append("**Data contract: passed** on the batch.")
    else:
        lines += [
            f"**Data contract: {len(contract_['failures'])} violation(s)**",
            "",
            "| column | check | failing rows | examples |",
            "|---|---|---:|---|",
        ]
        for f in contract_["failures"]:
            ex = ", ".join(
                f"{e.get('where', e.get('row'))}: {e['value']!r}" for e in f["examples"][:3]
            )
            rows = "" if f["failing_rows"] is None else str(f["failing_rows"])
            lines.append(f"| {f['column'] or '(table)'} | `{f['check']}` | {rows} | {ex} |")
    perf = report.get("performance")
    if perf:
        lines += ["", "## Model quality on the labelled rows", ""]
        if perf.get("status") == "compared":
            lines += ["| metric | batch | test set | change |", "|---|---:|---:|---:|"]
            for name, delta in perf["delta"].items():
                flag = " ⚠" if name in perf["degraded_metrics"] else ""
                lines.append(
                    f"| {name} | {perf['metrics'][name]:.4f} | "
                    f"{perf['reference_metrics'][name]:.4f} | {delta:+.4f}{flag} |"
                )
            lines.append(f"\n{perf['labelled_rows']} labelled row(s). {_judged(perf, s)}")
        else:
            lines.append(
                f"Not compared: {perf.get('status')} ({perf.get('labelled_rows', 0)} rows)."
            )
    st = report.get("staleness") or {}
    lines += ["", "## Model age", ""]
    if st.get("status") in ("fresh", "stale"):
        lines.append(
            f"Trained {st['trained_at']} ({st['age_days']:.1f} days ago, from {st['source']}); "
            f"limit {st['max_model_age_days']} days: **{st['status']}**."
        )
    else:
        lines.append(f"Unknown: {st.get('note', 'no model metadata')}.")
    return "\n".join(lines) + "\n"


def _judged(perf: dict[str, Any], s: dict[str, Any]) -> str:
    """How the primary metric was judged: its drop against the tolerance and the noise."""
    j = perf.get("judged")
    if not j:
        return ""
    m, bound = j["metric"], f"{j['level']:.0%} bootstrap upper bound {j['upper_bound']:.3f}"
    if not j["beyond_tolerance"]:
        return f"Judged on {m}: within monitor.max_metric_drop={s['max_metric_drop']}."
    if not j["beyond_noise"]:
        return (
            f"Judged on {m}: {j['drop']:.3f} below the test set, more than "
            f"monitor.max_metric_drop={s['max_metric_drop']}, but within the sampling noise of "
            f"{perf['labelled_rows']} rows ({bound}, not below the test set's "
            f"{perf['reference_metrics'][m]:.3f}): not counted."
        )
    return f"Judged on {m}: **{j['drop']:.3f} below the test set** ({bound}): counted as drift."


def summary_text(report: dict[str, Any]) -> str:
    lines = [f"drift: {report['status']} (exit {report['exit_code']})"]
    lines += [f"  - {r}" for r in report["reasons"]]
    cur = report["current"]
    if cur.get("malformed_lines"):
        lines.append(f"  note: {cur['malformed_lines']} malformed log line(s) skipped")
    return "\n".join(lines)
