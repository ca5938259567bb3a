"""Where each stage reads and writes. ``dvc.yaml`` declares the same paths (a test checks)."""

from pathlib import Path

INGESTED = Path("data/interim/ingested.parquet")
VALIDATED = Path("data/interim/validated.parquet")
TRAIN = Path("data/processed/train.parquet")
TEST = Path("data/processed/test.parquet")

MODEL = Path("models/model.skops")
BASELINE = Path("models/baseline.skops")
MODEL_META = Path("models/model_meta.json")

REPORTS = Path("reports")
INGEST_REPORT = REPORTS / "ingest.json"
VALIDATION_JSON = REPORTS / "validation.json"
VALIDATION_MD = REPORTS / "validation.md"
METRICS = REPORTS / "metrics.json"
SLICES = REPORTS / "slices.json"
COST = REPORTS / "cost.json"
# Machine- and time-dependent facts of the last local run (fit time, predict latency, when and
# from which commit): git-ignored and not a DVC output, so rerunning the pipeline on the same
# inputs changes no tracked file. Absent when DVC restored the stages instead of running them.
TIMINGS = REPORTS / "timings.json"
PLOTS = REPORTS / "plots"
CONFUSION = PLOTS / "confusion.csv"
ROC_DIR = PLOTS / "roc"
PR_DIR = PLOTS / "precision_recall"
IMPORTANCE = PLOTS / "importance.csv"
RESIDUALS = PLOTS / "residuals.csv"  # regression: actual, predicted and residual per test row
# The tune stage: the estimator and hyperparameters train fits (committed to git, small; the
# review reads base's choice with `git show`) and the cross-validation table of the search.
TUNED = Path("models/tuned.json")
SEARCH = REPORTS / "search.json"


def committed() -> tuple[str, ...]:
    """Every path a project commits to git, defined once: ``make adopt``'s commit line,
    ``make check-stale``'s advice and ``make retrain-pr`` all use it. It covers the adopter's
    package, the knob and pipeline files, the committed results (``reports/``, ``cache: false``
    outputs such as ``models/model_meta.json``) and ``data/`` (a small table itself, a large one's
    ``.dvc`` file); git-ignored files inside them (DVC-cached outputs, local runs) stay out."""
    return ("src/project", "params.yaml", "dvc.yaml", "dvc.lock", str(REPORTS), "data", "models")


def commit_command(message: str) -> str:
    """The one shell line that commits a project's state: ``git add -A`` of ``committed()``."""
    quoted = message.replace('"', '\\"')
    return f'git add -A {" ".join(committed())} && git commit -m "{quoted}"'
