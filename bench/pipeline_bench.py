"""Pipeline benchmark: how long the DVC pipeline, a scaled dataset and environment set-up take.

Run with ``make bench`` (or ``uv run --frozen --no-sync python bench/pipeline_bench.py``).
Measures, on this machine, in temporary copies of the repository (never in the working tree):

1. no-op ``dvc repro`` (the pipeline already ran): median of several runs;
2. full ``dvc repro`` from a clean state (no outputs, empty DVC cache) on the bundled data, with
   the time of each stage as DVC runs it, and each stage command run alone;
3. a synthetic dataset of ``--rows`` rows that follows the data contract, through the real CLI
   stages (``mlci ingest``, ``validate``, ``split``, ``train``, ``evaluate``), with wall time,
   CPU time and peak RSS of each stage process (``os.wait4``);
4. ``uv sync --frozen`` into a new virtual environment with an empty package cache, then a second
   sync with nothing changed.

Writes ``bench/results/pipeline.json`` and prints a markdown table. Exit status 1 if a section
failed (the failing command's stderr is printed); a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _pipeline_util import (
    BIN,
    REPO,
    BenchError,
    Measured,
    analytics_reports_left,
    copy_repo,
    cpu_snapshot,
    load_average,
    machine_facts,
    other_load,
    remove_tree,
    run_measured,
    tool_env,
    wait_for_quiet,
    workspace,
)

RESULTS = REPO / "bench" / "results" / "pipeline.json"
SECTIONS = ("startup", "full", "noop", "scaled", "setup")

TARGETS = {
    "noop_repro_s": 1.5,
    "full_repro_s": 20.0,
    "scaled_validate_train_evaluate_s": 120.0,
    "scaled_peak_rss_gib": 4.0,
    "cold_sync_s": 90.0,
    "warm_sync_s": 10.0,
}
SCALED_STAGES = ("ingest", "validate", "split", "tune", "train", "evaluate")
SCALED_TARGET_STAGES = ("validate", "train", "evaluate")
SYNTHETIC = Path("data/synthetic/synthetic.parquet")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mlci() -> str:
    return str(BIN / "mlci")


def dvc() -> str:
    return str(BIN / "dvc")


# --------------------------------------------------------------------------- pipeline facts


def pipeline_stages(repo: Path) -> list[str]:
    return list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def pipeline_outputs(repo: Path) -> list[Path]:
    """Every path a stage writes (outs, metrics, plots), as declared in dvc.yaml."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    found = []
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []) or []:
                found.append(repo / (next(iter(entry)) if isinstance(entry, dict) else entry))
    return found


def make_clean(repo: Path) -> None:
    """No pipeline outputs and an empty DVC cache (and no run cache)."""
    for out in pipeline_outputs(repo):
        if out.is_dir():
            remove_tree(out)
        else:
            out.unlink(missing_ok=True)
    for sub in ("cache", "tmp"):
        remove_tree(repo / ".dvc" / sub)


def stage_spans(m: Measured, stages: list[str]) -> tuple[dict[str, float], float]:
    """Per-stage wall time from DVC's 'Running stage' lines (each span runs to the next stage's
    start or the end of ``dvc repro``, so it includes DVC hashing outputs and writing the lock).
    Returns the spans and DVC's start-up time before the first stage."""
    starts = []
    for t, line in m.stdout_lines:
        found = re.search(r"Running stage '([^']+)'", line)
        if found:
            starts.append((found.group(1), t))
    ran = [name for name, _ in starts]
    if ran != stages:
        raise BenchError(
            f"dvc repro from a clean state ran stages {ran}, expected {stages}\n"
            f"--- stdout ---\n{m.stdout[-3000:]}\n--- stderr ---\n{m.stderr[-3000:]}"
        )
    spans = {}
    for i, (name, t) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else m.wall_s
        spans[name] = round(end - t, 3)
    return spans, round(starts[0][1], 3)


# --------------------------------------------------------------------------- sections


def bench_startup(root: Path, repeats: int) -> dict[str, Any]:
    """Fixed start-up costs every stage pays (diagnostic, no target)."""
    repo = copy_repo(root / "startup" / "repo")
    env = tool_env(src=repo / "src")
    py = str(BIN / "python")
    probes = {
        "python_bare": [py, "-c", "pass"],
        "import_pandas": [py, "-c", "import pandas"],
        "import_mlci_contract": [py, "-c", "import mlci.contract"],
        "import_sklearn_base": [py, "-c", "import sklearn.base"],
        "import_mlci_train": [py, "-c", "import mlci.pipeline.train"],
        "mlci_check_params": [mlci(), "check-params"],
        "dvc_version": [dvc(), "--version"],
    }
    out = {}
    for name, cmd in probes.items():
        walls = [run_measured(cmd, cwd=repo, env=env, label=name).wall_s for _ in range(repeats)]
        out[name] = {"median_s": round(statistics.median(walls), 3), "runs_s": _r(walls)}
        log(f"startup {name}: {out[name]['median_s']:.2f} s")
    remove_tree(repo)
    return out


def bench_full_and_noop(
    root: Path, full_runs: int, noop_runs: int, sections: set[str]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    runs = []
    repo = None
    for i in range(full_runs if "full" in sections else 1):
        repo = copy_repo(root / f"full-{i}" / "repo")
        env = tool_env(src=repo / "src")
        make_clean(repo)
        load = load_average()
        m = run_measured([dvc(), "repro"], cwd=repo, env=env, label="dvc repro (clean)")
        spans, dvc_start = stage_spans(m, pipeline_stages(repo))
        runs.append(
            {**m.summary(), "stages_s": spans, "dvc_startup_s": dvc_start, "load_average": load}
        )
        log(f"full dvc repro #{i + 1}: {m.wall_s:.1f} s  {spans}")
        if i + 1 < full_runs:
            remove_tree(repo.parent)
    assert repo is not None
    env = tool_env(src=repo / "src")

    if "full" in sections:
        walls = [r["wall_s"] for r in runs]
        median_run = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
        stage_names = list(runs[0]["stages_s"])
        results["full"] = {
            "what": "dvc repro from a clean state (no outputs, empty DVC cache), bundled data",
            "median_s": round(statistics.median(walls), 3),
            "runs": runs,
            "stages_median_s": {
                s: round(statistics.median(r["stages_s"][s] for r in runs), 3) for s in stage_names
            },
            "peak_rss_mib": median_run["peak_rss_mib"],
            "target_s": TARGETS["full_repro_s"],
            "met": statistics.median(walls) < TARGETS["full_repro_s"],
        }

    if "noop" in sections:
        load = load_average()
        first = run_measured([dvc(), "repro"], cwd=repo, env=env, label="dvc repro (no-op)")
        # Interleaved with the same command without DVC's usage analytics (DVC_NO_ANALYTICS=1):
        # ITERATIVE_DO_NOT_TRACK alone does not stop DVC from spawning its analytics process.
        quiet_env = {**env, "DVC_NO_ANALYTICS": "1"}
        walls, quiet_walls = [], []
        for _ in range(noop_runs):
            for e, into in ((env, walls), (quiet_env, quiet_walls)):
                m = run_measured([dvc(), "repro"], cwd=repo, env=e, label="dvc repro (no-op)")
                if "Running stage" in m.stdout:
                    raise BenchError(f"a no-op dvc repro ran a stage:\n{m.stdout[-3000:]}")
                into.append(m.wall_s)
        status = [
            run_measured([dvc(), "status"], cwd=repo, env=env, label="dvc status").wall_s
            for _ in range(3)
        ]
        results["noop"] = {
            "what": "dvc repro when nothing changed (pipeline already ran in this copy)",
            "median_s": round(statistics.median(walls), 3),
            "runs_s": _r(walls),
            "first_after_repro_s": round(first.wall_s, 3),
            "DVC_NO_ANALYTICS_set_by_caller": "DVC_NO_ANALYTICS" in env,
            "median_with_DVC_NO_ANALYTICS_s": round(statistics.median(quiet_walls), 3),
            "runs_with_DVC_NO_ANALYTICS_s": _r(quiet_walls),
            "dvc_status_median_s": round(statistics.median(status), 3),
            "dvc_analytics_reports_left_in_tmpdir": analytics_reports_left(),
            "load_average": load,
            "target_s": TARGETS["noop_repro_s"],
            "met": statistics.median(walls) < TARGETS["noop_repro_s"],
        }
        log(f"no-op dvc repro: median {statistics.median(walls):.2f} s {_r(walls)}")

    if "full" in sections:
        # Each stage command alone (no DVC), in the copy where the pipeline ran: the part of a
        # stage's span that is the command itself.
        alone = {}
        for stage in pipeline_stages(repo):
            m = run_measured([mlci(), stage], cwd=repo, env=env, label=f"mlci {stage}")
            alone[stage] = m.summary()
        results["full"]["stage_command_alone"] = alone
        # What DVC itself costs around the stage commands (CPU, so other load matters less).
        repro_cpu = statistics.median(r["cpu_user_s"] + r["cpu_sys_s"] for r in runs)
        stage_cpu = sum(a["cpu_user_s"] + a["cpu_sys_s"] for a in alone.values())
        results["full"]["cpu_s"] = round(repro_cpu, 3)
        results["full"]["stage_commands_cpu_s"] = round(stage_cpu, 3)
        results["full"]["dvc_own_cpu_s_estimate"] = round(repro_cpu - stage_cpu, 3)
        log(f"stage commands alone: { {k: v['wall_s'] for k, v in alone.items()} }")
    remove_tree(repo.parent)
    return results


def bench_scaled(root: Path, rows: int) -> dict[str, Any]:
    repo = copy_repo(root / "scaled" / "repo")
    env = tool_env(src=repo / "src")
    # Generated from the project's own source first (pipeline_synth reads data.source), then
    # data.source points at the synthetic table.
    gen = run_measured(
        [
            str(BIN / "python"),
            str(repo / "bench" / "pipeline_synth.py"),
            "--rows",
            str(rows),
            "--out",
            SYNTHETIC.as_posix(),
        ],
        cwd=repo,
        env=env,
        label="generate synthetic data",
    )
    params = repo / "params.yaml"
    text, n = re.subn(
        r"(?m)^(\s+source:\s*)\S+", rf"\g<1>{SYNTHETIC.as_posix()}", params.read_text(), count=1
    )
    if n != 1:
        raise BenchError(f"{params}: no `data.source` line to point at the synthetic data")
    params.write_text(text)
    log(f"generated {rows} rows in {gen.wall_s:.1f} s")
    stages: dict[str, Any] = {}
    load = load_average()
    for stage in SCALED_STAGES:
        m = run_measured([mlci(), stage], cwd=repo, env=env, label=f"mlci {stage} (scaled)")
        stages[stage] = m.summary()
        log(f"scaled {stage}: {m.wall_s:.1f} s, peak RSS {m.peak_rss_mib:.0f} MiB")

    ingest = json.loads((repo / "reports" / "ingest.json").read_text())
    validation = json.loads((repo / "reports" / "validation.json").read_text())
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    timings = json.loads((repo / "reports" / "timings.json").read_text())  # git-ignored, per run
    total = sum(stages[s]["wall_s"] for s in SCALED_TARGET_STAGES)
    peak = max(stages[s]["peak_rss_mib"] for s in SCALED_STAGES) / 1024
    plots = repo / "reports" / "plots"
    result = {
        "what": "synthetic data that follows the data contract, run through the mlci stages",
        "rows": rows,
        "rows_after_ingest": ingest["rows_out"],
        "train_rows": json.loads((repo / "models" / "model_meta.json").read_text())["train_rows"],
        "test_rows": metrics["test_rows"],
        "source_bytes": (repo / SYNTHETIC).stat().st_size,
        "generate_s": round(gen.wall_s, 3),
        "load_average": load,
        "stages": stages,
        "validate_train_evaluate_s": round(total, 3),
        "peak_rss_gib": round(peak, 3),
        "validation_passed": validation["valid"],
        "model_accuracy": metrics["model"]["accuracy"],
        "fit_seconds": timings.get("fit_seconds"),
        "plot_files_bytes": sum(p.stat().st_size for p in plots.rglob("*") if p.is_file()),
        "permutation_repeats": yaml.safe_load(params.read_text())["evaluate"].get(
            "permutation_repeats"
        ),
        "targets": {
            "validate_train_evaluate_s": TARGETS["scaled_validate_train_evaluate_s"],
            "peak_rss_gib": TARGETS["scaled_peak_rss_gib"],
        },
        "met": total < TARGETS["scaled_validate_train_evaluate_s"]
        and peak < TARGETS["scaled_peak_rss_gib"],
    }
    if not validation["valid"]:
        raise BenchError(f"the synthetic data failed validation: {validation['failures']}")
    remove_tree(repo.parent)
    return result


def find_uv() -> str | None:
    return os.environ.get("UV") or shutil.which("uv")


def bench_setup(root: Path, uv: str) -> dict[str, Any]:
    repo = copy_repo(root / "setup" / "repo")
    cache = root / "setup" / "uv-cache"
    venv = root / "setup" / "venv"
    env = tool_env(
        UV_CACHE_DIR=str(cache),
        UV_PROJECT_ENVIRONMENT=str(venv),
        UV_PYTHON_DOWNLOADS="never",
        UV_COMPILE_BYTECODE="1",  # as `make setup` does
        UV_PYTHON=_base_python(),
        UV_NO_PROGRESS="1",
    )
    for var in ("VIRTUAL_ENV", "UV_OFFLINE", "UV_NO_SYNC", "UV_FROZEN"):
        env.pop(var, None)
    load = load_average()
    cold = run_measured([uv, "sync", "--frozen"], cwd=repo, env=env, label="uv sync (cold)")
    log(f"cold uv sync: {cold.wall_s:.1f} s")
    warm_walls = []
    warm = cold
    for _ in range(3):
        warm = run_measured([uv, "sync", "--frozen"], cwd=repo, env=env, label="uv sync (warm)")
        warm_walls.append(warm.wall_s)
    log(f"second uv sync: {statistics.median(warm_walls):.2f} s {_r(warm_walls)}")
    result = {
        "what": "uv sync --frozen into a new venv with an empty uv cache (UV_COMPILE_BYTECODE=1,"
        " as `make setup`), then again with nothing changed",
        "uv": uv,
        "cold_s": round(cold.wall_s, 3),
        "cold_uv_says": _uv_lines(cold.stderr),
        "cold_peak_rss_mib": round(cold.peak_rss_mib, 1),
        "warm_median_s": round(statistics.median(warm_walls), 3),
        "warm_runs_s": _r(warm_walls),
        "warm_uv_says": _uv_lines(warm.stderr),
        "download_cache_mib": round(_du(cache) / 2**20, 1),
        "venv_mib": round(_du(venv) / 2**20, 1),
        "load_average": load,
        "targets": {"cold_s": TARGETS["cold_sync_s"], "warm_s": TARGETS["warm_sync_s"]},
        "met": cold.wall_s < TARGETS["cold_sync_s"]
        and statistics.median(warm_walls) < TARGETS["warm_sync_s"],
    }
    return result  # the venv and cache are removed with the workspace, after the results


def _base_python() -> str:
    v = sys.version_info
    candidate = Path(sys.base_prefix) / "bin" / f"python{v.major}.{v.minor}"
    return str(candidate) if candidate.exists() else f"{v.major}.{v.minor}"


def _uv_lines(stderr: str) -> list[str]:
    keep = ("Resolved", "Prepared", "Installed", "Audited", "Checked", "Bytecode", "Built")
    return [line.strip() for line in stderr.splitlines() if line.strip().startswith(keep)]


def _du(path: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            p = Path(dirpath) / name
            if not p.is_symlink():
                with contextlib.suppress(OSError):
                    total += p.stat().st_size
    return total


def _r(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


# --------------------------------------------------------------------------- report


def _status(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**missed**")


def table(res: dict[str, Any]) -> str:
    rows = ["| Measure | Result | Target | Status |", "|---|---:|---:|---|"]
    if "noop" in res:
        n = res["noop"]
        rows.append(
            f"| No-op `dvc repro` (median of {len(n['runs_s'])}) | {n['median_s']:.2f} s "
            f"| < {n['target_s']:g} s | {_status(n['met'])} |"
        )
    if "full" in res:
        f = res["full"]
        rows.append(
            f"| Full `dvc repro`, clean state, bundled data (median of {len(f['runs'])}) "
            f"| {f['median_s']:.1f} s | < {f['target_s']:g} s | {_status(f['met'])} |"
        )
        alone = f.get("stage_command_alone", {})
        for stage, s in f["stages_median_s"].items():
            extra = f" (command alone {alone[stage]['wall_s']:.1f} s)" if stage in alone else ""
            rows.append(f"| &nbsp;&nbsp;stage `{stage}` in `dvc repro`{extra} | {s:.1f} s | | |")
    if "scaled" in res:
        s = res["scaled"]
        total, limit = s["validate_train_evaluate_s"], s["targets"]["validate_train_evaluate_s"]
        rows.append(
            f"| Scaled data ({s['rows']:,} rows): validate + train + evaluate "
            f"| {total:.1f} s | < {limit:g} s | {_status(total < limit)} |"
        )
        rows.append(
            f"| Scaled data: peak RSS of any stage | {s['peak_rss_gib']:.2f} GiB "
            f"| < {s['targets']['peak_rss_gib']:g} GiB "
            f"| {_status(s['peak_rss_gib'] < s['targets']['peak_rss_gib'])} |"
        )
        for stage, m in s["stages"].items():
            note = "" if stage in SCALED_TARGET_STAGES else " (not in target)"
            rows.append(
                f"| &nbsp;&nbsp;`mlci {stage}`{note} | {m['wall_s']:.1f} s, "
                f"{m['peak_rss_mib'] / 1024:.2f} GiB | | |"
            )
    if "setup" in res:
        e = res["setup"]
        rows.append(
            f"| `uv sync --frozen`, empty cache, new venv | {e['cold_s']:.1f} s "
            f"| < {e['targets']['cold_s']:g} s | {_status(e['cold_s'] < e['targets']['cold_s'])} |"
        )
        rows.append(
            f"| `uv sync --frozen`, nothing changed (median of {len(e['warm_runs_s'])}) "
            f"| {e['warm_median_s']:.2f} s | < {e['targets']['warm_s']:g} s "
            f"| {_status(e['warm_median_s'] < e['targets']['warm_s'])} |"
        )
    if "startup" in res:
        st = res["startup"]
        check, version = st["mlci_check_params"]["median_s"], st["dvc_version"]["median_s"]
        rows.append(
            f"| Start-up: `mlci check-params` / `dvc --version` (diagnostic) "
            f"| {check:.2f} s / {version:.2f} s | | |"
        )
    return "\n".join(rows)


def busy_note(res: dict[str, Any]) -> str:
    parts = [
        f"{key} {res[key]['other_load_cores_during']:.2f}"
        for key in ("full", "noop", "scaled", "setup")
        if key in res and res[key].get("other_load_cores_during") is not None
    ]
    if not parts:
        return ""
    return (
        "Cores kept busy by other processes during each section (0 = quiet machine; "
        f"{res['machine']['cpu_count']} cores): " + ", ".join(parts) + "."
    )


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m['cpu_model']}, {m['cpu_count']} cores, {m['ram_gib']:g} GiB RAM, "
        f"Python {m['python']}, {m['uv'] or 'uv ?'}, dvc {m['libraries'].get('dvc')}, "
        f"{m['date'][:10]}"
    )


def write_results(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic dataset rows")
    parser.add_argument("--full-runs", type=int, default=3, help="clean-state dvc repro runs")
    parser.add_argument("--noop-runs", type=int, default=5, help="no-op dvc repro runs")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"results file (default: {RESULTS.relative_to(REPO)} when every section runs, "
        "none otherwise)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="before each section, wait up to this many seconds for other processes to use "
        "under a quarter of a core (0: do not wait)",
    )
    args = parser.parse_args(argv)

    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    output = args.output or (RESULTS if sections == set(SECTIONS) else None)
    uv = find_uv()
    if "setup" in sections and uv is None:
        parser.error("`uv` not found on PATH (set UV=/path/to/uv)")

    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "pipeline",
        "command": "make bench",
        "machine": machine_facts(uv),
        "targets": TARGETS,
    }
    errors: dict[str, str] = {}
    with workspace(keep=args.keep) as root:
        log(f"working in {root}")
        plan = [
            ("startup", lambda: {"startup": bench_startup(root, args.startup_runs)}),
            (
                "full/noop",
                lambda: bench_full_and_noop(root, args.full_runs, args.noop_runs, sections),
            ),
            ("scaled", lambda: {"scaled": bench_scaled(root, args.rows)}),
            ("setup", lambda: {"setup": bench_setup(root, uv)}),
        ]
        for name, func in plan:
            if not set(name.split("/")) & sections:
                continue
            quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else {}
            if quiet.get("waited_s", 0) >= 5:
                log(f"waited {quiet['waited_s']:.0f} s for other work on the machine to settle")
            log(f"section {name} ...")
            before = cpu_snapshot()
            try:
                produced = func()
            except (BenchError, OSError, KeyError, ValueError) as err:
                errors[name] = str(err)
                log(f"section {name} FAILED:\n{err}")
                continue
            # How busy the rest of the machine was meanwhile (cores): numbers taken while
            # other work competed for the 2 cores are slower than this machine can do.
            busy = other_load(before, cpu_snapshot())
            for part in produced.values():
                part["other_load_cores_during"] = busy
                if quiet:
                    part["quiet_wait"] = quiet
            results.update(produced)
        results["total_bench_s"] = round(time.perf_counter() - started, 1)
        if errors:
            results["errors"] = errors

        print(f"\nMachine: {machine_line(results['machine'])}\n")
        print(table(results))
        if note := busy_note(results):
            print(f"\n{note}")
        if output is not None:
            write_results(output, results)
            print(f"\nwrote {output}")
        log("removing temporary files (a fresh venv and package cache can take minutes to delete)")
    if errors:
        print(f"\nFAILED sections: {', '.join(errors)} (details above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
