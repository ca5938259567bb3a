"""Drift statistics, the batch readers (data files, prediction logs) and the decision rule, in
process.

Batches are built from the penguins example's raw table (tests/fixtures/penguins, the test
process's project; cleaned as ingest does), so these tests need no pipeline run. Other tables
(digit codes, open sets, regression) are checked on generated fixture projects in
tests/integration/test_drift_projects.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlci import contract
from mlci.config import MonitorConfig, load_params, parse_params
from mlci.errors import UserError
from mlci.monitoring import batches, checks, statistics
from project.cleaning import clean_raw
from tests.helpers import EXAMPLE_PARAMS, EXAMPLE_RAW

CFG = MonitorConfig()
SPEC = contract.spec()


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    raw = pd.read_csv(EXAMPLE_RAW)
    return clean_raw(raw)[0].reset_index(drop=True)


def sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return df.iloc[rng.integers(0, len(df), n)].reset_index(drop=True)


def features(df: pd.DataFrame) -> pd.DataFrame:
    return df[SPEC.feature_names]


# --------------------------------------------------------------------------- building blocks


def test_holm_and_bonferroni_adjust_as_textbook() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1, made monotone.
    assert statistics.adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert statistics.adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert statistics.adjust(p, "none") == p
    assert statistics.adjust([], "holm") == []


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    same = statistics.psi_from_counts(np.array([500, 300, 200]), np.array([1000, 600, 400]))
    assert same == pytest.approx(0.0, abs=1e-5)
    # Counts get half a count each (Jeffreys smoothing): 5.5/11 vs 6.5/11 and 4.5/11.
    r, c = np.array([5.5, 5.5]) / 11, np.array([6.5, 4.5]) / 11
    expected = float(np.sum((c - r) * np.log(c / r)))
    assert statistics.psi_from_counts(np.array([5, 5]), np.array([6, 4])) == pytest.approx(expected)
    assert statistics.psi_from_counts(np.array([500, 500]), np.array([600, 400])) == pytest.approx(
        0.1 * np.log(1.2) + 0.1 * np.log(1.25), rel=1e-2
    )
    # An empty bin gets a floor share, so a category new in the batch gives a large, finite PSI.
    assert 1 < statistics.psi_from_counts(np.array([10, 0]), np.array([5, 5])) < 10


def test_numeric_psi_counts_missing_values_as_their_own_bin() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=2000)
    cur = ref.copy()
    cur[:600] = np.nan  # 30% gaps, same distribution otherwise
    assert statistics.numeric_psi(ref, ref.copy(), 10) == pytest.approx(0.0)
    assert statistics.numeric_psi(ref, cur, 10) > 0.25


def test_sparse_categories_get_a_monte_carlo_p_value() -> None:
    table = np.array([[120, 95, 3], [100, 70, 1]])
    stat, p, test = statistics.chi_square(table, seed=1)
    assert test == "chi-square (Monte Carlo)"
    assert 0 < p <= 1
    assert statistics.chi_square(table, seed=1) == (stat, p, test)  # seeded: reproducible
    _, _, plain = statistics.chi_square(np.array([[120, 95, 30], [100, 70, 25]]), seed=1)
    assert plain == "chi-square"


# --------------------------------------------------------------------------- the detector


def test_an_unshifted_batch_is_not_drift(bundled: pd.DataFrame) -> None:
    ref = features(sample(bundled, 256, seed=1))
    batch = batches.data_batch(features(sample(bundled, 200, seed=2)))
    results = statistics.compare(ref, batch, CFG)
    assert [r["column"] for r in results] == SPEC.feature_names
    assert all(r["status"] == "tested" for r in results)
    assert not any(r["drifted"] for r in results)
    by = {r["column"]: r for r in results}
    assert by["island"]["test"].startswith("chi-square")
    assert by["body_mass_g"]["test"] == "kolmogorov-smirnov"
    assert abs(by["body_mass_g"]["mean_shift_sd"]) < 0.3


def test_a_numeric_shift_is_found_in_that_column_only(bundled: pd.DataFrame) -> None:
    ref = features(sample(bundled, 256, seed=1))
    cur = features(sample(bundled, 200, seed=3)).copy()
    cur["flipper_length_mm"] += 0.5 * bundled["flipper_length_mm"].std()
    results = {r["column"]: r for r in statistics.compare(ref, batches.data_batch(cur), CFG)}
    assert results["flipper_length_mm"]["drifted"]
    assert results["flipper_length_mm"]["p_adjusted"] <= CFG.alpha
    assert results["flipper_length_mm"]["mean_shift_sd"] == pytest.approx(0.5, abs=0.2)
    assert results["flipper_length_mm"]["psi_level"] in ("moderate", "major")
    assert [c for c, r in results.items() if r["drifted"]] == ["flipper_length_mm"]


def test_a_category_shift_and_a_new_category_are_found(bundled: pd.DataFrame) -> None:
    ref = features(sample(bundled, 256, seed=1))
    cur = features(sample(bundled, 200, seed=4)).copy()
    cur.loc[:59, "island"] = "Anvers"  # an island the contract (and training) never saw
    results = {r["column"]: r for r in statistics.compare(ref, batches.data_batch(cur), CFG)}
    island = results["island"]
    assert island["drifted"]
    assert island["new_categories"] == ["Anvers"]
    assert island["shares"]["Anvers"] == {"reference": 0.0, "current": 0.3}


def test_the_correction_covers_all_columns(bundled: pd.DataFrame) -> None:
    ref = features(sample(bundled, 256, seed=1))
    batch = batches.data_batch(features(sample(bundled, 200, seed=5)))
    results = statistics.compare(ref, batch, CFG)
    raw = sorted(r["p_value"] for r in results)
    adjusted = sorted(r["p_adjusted"] for r in results)
    assert adjusted[0] == pytest.approx(min(1.0, raw[0] * len(results)))


def test_a_significant_but_tiny_shift_is_not_drift() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"culmen_length_mm": rng.normal(45, 5, 20000)})
    cur = pd.Series(rng.normal(45.5, 5, 20000))  # 0.1 SD: real, but PSI about 0.01
    res = statistics.numeric_drift("culmen_length_mm", ref["culmen_length_mm"], cur, CFG)
    assert res["p_value"] < 1e-6
    results = [res]
    statistics.decide(results, CFG)
    assert results[0]["significant"] and not results[0]["drifted"]
    assert results[0]["psi"] < CFG.min_psi


def test_a_column_with_too_few_values_is_not_tested(bundled: pd.DataFrame) -> None:
    ref = features(bundled)
    cur = features(sample(bundled, 200, seed=6)).copy()
    cur.loc[10:, "body_mass_g"] = np.nan  # 10 values left, fewer than min_batch_size
    results = {r["column"]: r for r in statistics.compare(ref, batches.data_batch(cur), CFG)}
    assert results["body_mass_g"]["status"] == "not_enough_data"
    assert "p_adjusted" not in results["body_mass_g"]
    assert results["island"]["status"] == "tested"


def test_the_false_alarm_rate_stays_at_alpha_on_resampled_data(bundled: pd.DataFrame) -> None:
    """A quick version of bench/drift_bench.py: independent samples of one population."""
    X = features(bundled)
    alarms = 0
    trials = 60
    for t in range(trials):
        rng = np.random.default_rng(1000 + t)
        ref = X.iloc[rng.integers(0, len(X), 256)].reset_index(drop=True)
        cur = X.iloc[rng.integers(0, len(X), 200)].reset_index(drop=True)
        alarms += any(
            r["drifted"] for r in statistics.compare(ref, batches.data_batch(cur), CFG, seed=t)
        )
    assert alarms / trials <= 0.1  # alpha 0.05; the full benchmark measures it over 500 trials


# --------------------------------------------------------------------------- prediction logs


def log_line(row: pd.Series, prediction: str = "Adelie", **extra: object) -> str:
    feats = {k: (None if pd.isna(v) else v) for k, v in row[SPEC.feature_names].items()}
    record = {
        "request_id": "r-1",
        "timestamp": "2026-11-20T10:00:00.000001+00:00",
        "model_version": "mlci_classifier:abc",
        "features": feats,
        "prediction": prediction,
        "probabilities": {"Adelie": 0.9, "Chinstrap": 0.05, "Gentoo": 0.05},
    }
    record.update(extra)
    return json.dumps(record)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"request_id": "a", "features": {', "not valid JSON"),
        ("[1, 2, 3]", "not a JSON object"),
        ('{"foo": 1}', "none of the expected keys"),
        ('{"timestamp": "yesterday", "prediction": "Adelie"}', "not an ISO-8601 time"),
        ('{"prediction": "Emperor"}', "not a class of the contract"),
        ('{"prediction": 3}', "'prediction' is not a string"),
        ('{"features": [1, 2]}', "'features' is not an object"),
        ('{"features": {"island": ["Biscoe"]}}', "not a string, number or null"),
        ('{"features": {"body_mass_g": true}}', "not a string, number or null"),
        ('{"probabilities": {"Adelie": "high"}}', "not an object of numbers"),
    ],
)
def test_malformed_log_lines_are_rejected_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(batches._MalformedLineError, match=reason):
        batches.parse_log_line(line.encode(), SPEC.classes)


def test_non_utf8_line_is_malformed() -> None:
    with pytest.raises(batches._MalformedLineError, match="UTF-8"):
        batches.parse_log_line(b'{"prediction": "\xff"}', SPEC.classes)


def test_log_reader_counts_and_skips_malformed_lines(tmp_path: Path, bundled: pd.DataFrame) -> None:
    good = [log_line(r) for _, r in bundled.head(30).iterrows()]
    lines = [*good[:10], "not json", "", '{"prediction": "Emperor"}', *good[10:], '{"trunc']
    path = tmp_path / "predictions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    batch = batches.load_current(path)
    assert batch.kind == "prediction_log"
    assert batch.rows == 30
    assert batch.lines_read == 33  # the blank line is not a record, nor malformed
    assert batch.malformed == 3
    assert [e["line"] for e in batch.malformed_examples] == [11, 13, 34]
    assert batch.malformed_reasons["not valid JSON (truncated or corrupted line)"] == 2
    assert batch.model_versions == {"mlci_classifier:abc": 30}
    assert batch.time_range == ("2026-11-20T10:00:00.000001+00:00",) * 2
    assert batch.origins[0] == f"{path}:1"
    assert len(batch.predictions) == 30


def test_log_features_left_out_for_privacy_are_not_available(
    tmp_path: Path, bundled: pd.DataFrame
) -> None:
    lines = []
    for _, row in sample(bundled, 120, seed=7).iterrows():
        record = json.loads(log_line(row))
        del record["features"]["sex"]  # MLCI_PREDICTION_LOG_EXCLUDE=sex
        record["features"]["culmen_depth_mm"] = None  # a real missing value, not left out
        lines.append(json.dumps(record))
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.jsonl").write_text("\n".join(lines[:60]) + "\n")
    (folder / "b.jsonl").write_text("\n".join(lines[60:]) + "\n")
    (folder / "notes.txt").write_text("ignored")
    batch = batches.load_current(folder)
    assert batch.rows == 120 and len(batch.sources) == 2
    assert "sex" not in batch.available
    results = {r["column"]: r for r in statistics.compare(features(bundled), batch, CFG)}
    assert results["sex"]["status"] == "not_available"
    assert "left out of the prediction log" in results["sex"]["note"]
    # All values missing: fewer present values than min_batch_size.
    assert results["culmen_depth_mm"]["status"] == "not_enough_data"
    assert results["culmen_depth_mm"]["missing_share_current"] == 1.0


def test_empty_folder_and_unknown_format_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no \*\.jsonl files"):
        batches.load_current(tmp_path / "empty")
    (tmp_path / "batch.xlsx").write_text("x")
    with pytest.raises(UserError, match="unknown format"):
        batches.load_current(tmp_path / "batch.xlsx")
    with pytest.raises(UserError, match="no such file"):
        batches.load_current(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- configuration


def test_monitor_settings_are_in_params_and_validated() -> None:
    params = load_params(EXAMPLE_PARAMS)
    assert params.monitor.correction in ("holm", "bonferroni")
    assert 0 < params.monitor.alpha <= 0.05
    raw = yaml.safe_load(EXAMPLE_PARAMS.read_text())
    for change, message in [
        ({"psi_moderate": 0.3, "psi_major": 0.2}, "psi_moderate"),
        ({"correction": "sidak"}, "monitor.correction"),
        ({"alpha": 0}, "monitor.alpha"),
        ({"min_batch_size": 1}, "monitor.min_batch_size"),
        ({"max_model_age": 30}, "monitor.max_model_age: unknown key"),
    ]:
        bad = {**raw, "monitor": {**raw["monitor"], **change}}
        with pytest.raises(UserError, match=message):
            parse_params(bad)


def test_rotated_gzip_logs_are_read_and_a_damaged_one_is_counted(
    tmp_path: Path, bundled: pd.DataFrame
) -> None:
    import gzip

    text = ("\n".join(log_line(r) for _, r in bundled.head(50).iterrows()) + "\n").encode()
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "predictions.jsonl.1.gz").write_bytes(b"")  # not listed: not *.jsonl.gz
    (folder / "old.jsonl.gz").write_bytes(gzip.compress(text))
    (folder / "cut.jsonl.gz").write_bytes(gzip.compress(text)[:-40])  # truncated copy
    batch = batches.load_current(folder)
    assert [Path(s).name for s in batch.sources] == ["cut.jsonl.gz", "old.jsonl.gz"]
    assert 50 < batch.rows < 100
    assert batch.malformed == 1
    assert batch.malformed_examples[0]["reason"].startswith("unreadable from here on")


# --------------------------------------------------------------------------- data files


def test_a_raw_source_sample_is_cleaned_as_training_data_is(tmp_path: Path) -> None:
    """The bundled raw table (source names, unmeasured birds) reads as contract rows; the
    fixes are counted and the rows keep the file's row numbers."""
    raw = pd.read_csv(EXAMPLE_RAW, dtype=str)
    raw.loc[5, "Sex"] = "."  # the data-entry placeholder the full raw table has
    raw.loc[10, "Body Mass (g)"] = "9000"  # grams beyond the contract: still a violation
    path = tmp_path / "raw.csv"
    raw.to_csv(path, index=False)
    batch = batches.load_current(path)
    assert batch.kind == "data"
    assert batch.cleaning == {
        "rows_read": 344,
        "rows_kept": 342,
        "fixes": {"sex_placeholder_set_missing": 1, "unmeasured_rows_dropped": 2},
    }
    assert set(SPEC.feature_names) <= set(batch.frame.columns)
    assert pd.isna(batch.frame.loc[5, "sex"])
    failures = checks.contract_check(batch, load_params(EXAMPLE_PARAMS))["failures"]
    assert [(f["column"], f["examples"]) for f in failures] == [
        ("body_mass_g", [{"row": 10, "value": 9000.0}])  # the file's data row, not a shifted one
    ]


def test_json_lines_of_rows_are_a_data_file_not_a_log(
    tmp_path: Path, bundled: pd.DataFrame
) -> None:
    rows = features(bundled.head(60)).astype(object)
    path = tmp_path / "rows.jsonl"
    path.write_text(rows.to_json(orient="records", lines=True))
    batch = batches.load_current(path)
    assert batch.kind == "data" and batch.rows == 60
    assert batch.frame["island"].tolist() == bundled["island"].head(60).tolist()
    log = tmp_path / "log.jsonl"
    log.write_text(log_line(bundled.iloc[0]) + "\n")
    assert batches.load_current(log).kind == "prediction_log"


def test_cleaning_that_cannot_handle_a_file_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlci import tables

    def strict(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
        return df.rename(columns={"Species": "species"})[["species", "Island"]], {}

    monkeypatch.setattr(tables.cleaning, "clean_raw", strict)
    path = tmp_path / "b.csv"
    path.write_text("island,sex\nBiscoe,male\n")
    with pytest.raises(UserError, match=r"current batch .*b\.csv: src/project/cleaning\.py"):
        batches.load_current(path)


# --------------------------------------------------------------------------- regression, open sets


def test_regression_log_lines_carry_a_number() -> None:
    line = b'{"features": {"body_mass_g": 4000}, "prediction": 151.5}'
    assert batches.parse_log_line(line, ())["prediction"] == 151.5
    for bad in (b'{"prediction": "151.5"}', b'{"prediction": NaN}', b'{"prediction": true}'):
        with pytest.raises(batches._MalformedLineError, match="not a finite number"):
            batches.parse_log_line(bad, ())
    # A classification log keeps its rule: a class label, as a string.
    with pytest.raises(batches._MalformedLineError, match="'prediction' is not a string"):
        batches.parse_log_line(b'{"prediction": 151.5}', SPEC.classes)


def zipf_codes(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.Series:
    """400 five-digit codes: a few frequent, most rare (a postcode-like open set)."""
    weights = 1 / np.arange(1, 401) ** 1.1
    weights /= weights.sum()
    codes = np.array([f"{i:05d}" for i in range(400)])
    values = rng.choice(codes, size=n, p=weights)
    moved = rng.random(n) < shift  # this share of rows moves to the most frequent code
    values[moved] = codes[0]
    return pd.Series(values, dtype="string")


def test_an_open_set_is_tested_over_frequent_values_and_other() -> None:
    rng = np.random.default_rng(3)
    ref = zipf_codes(rng, 2000)
    same = statistics.categorical_drift(
        "postcode", ref, zipf_codes(rng, 400), CFG, (), 1, open_set=True
    )
    # Only values expected >= 5 times in the 400-row batch get a cell: no sea of sparse cells.
    cells = set(same["shares"]) - {statistics.OTHER, statistics.MISSING}
    assert 2 <= len(cells) == same["values_tested"] <= statistics.OPEN_MAX_VALUES
    assert all(same["shares"][c]["reference"] * 400 >= 5 for c in cells)
    assert statistics.OTHER in same["shares"] and same["new_categories"] == []
    assert same["test"].startswith("chi-square") and "frequent value(s) + other" in same["test"]
    assert same["p_value"] > 0.01
    moved = statistics.categorical_drift(
        "postcode", ref, zipf_codes(rng, 400, shift=0.3), CFG, (), 1, open_set=True
    )
    assert moved["p_value"] < 1e-6
    # A closed set still counts every value, and names the ones the contract does not know.
    closed = statistics.categorical_drift("postcode", ref, zipf_codes(rng, 400), CFG, ("00000",), 1)
    assert len(closed["new_categories"]) > 20


def test_an_open_set_of_rare_values_only_is_tested_on_its_missing_share() -> None:
    rng = np.random.default_rng(4)
    codes = pd.Series([f"{v:05d}" for v in rng.integers(0, 400, 300)], dtype="string")
    batch = pd.Series([f"{v:05d}" for v in rng.integers(0, 400, 200)], dtype="string")
    res = statistics.categorical_drift("postcode", codes, batch, CFG, (), 1, open_set=True)
    assert res["values_tested"] == 0 and res["p_value"] == 1.0
    assert 0.3 < res["unseen_share_current"] < 0.7  # informational: a rare code is often new
    gappy = batch.copy()
    gappy[:100] = pd.NA
    res = statistics.categorical_drift("postcode", codes, gappy, CFG, (), 1, open_set=True)
    assert res["p_value"] < 1e-6 and res["shares"][statistics.MISSING]["current"] == 0.5


class _Regressor:
    """Stands in for a fitted regression pipeline: returns the predictions it was given."""

    def __init__(self, pred: np.ndarray) -> None:
        self.pred = pred

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        assert len(X) == len(self.pred)
        return self.pred


def labelled_regression_batch(n: int, r2: float, seed: int) -> tuple[batches.Batch, _Regressor]:
    """``n`` rows whose predictions score exactly ``r2``."""
    rng = np.random.default_rng(seed)
    y = rng.normal(150, 50, n)
    noise = rng.normal(size=n)
    noise -= noise.mean()
    scale = np.sqrt((1 - r2) * ((y - y.mean()) ** 2).sum() / (noise**2).sum())
    frame = pd.DataFrame({name: [None] * n for name in SPEC.feature_names})
    frame[SPEC.target] = y
    return batches.data_batch(frame), _Regressor(y + scale * noise)


def test_a_metric_drop_counts_only_beyond_the_tolerance_and_the_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression, judged on R²: a test-set R² of 0.46 and a batch at 0.33 (0.13 lower, more
    than max_metric_drop 0.1). On 88 rows that is sampling noise (it happened to an unshifted
    held-out sample); on 2,000 rows it is not."""
    import dataclasses

    from mlci.monitoring import quality

    monkeypatch.setattr(contract, "spec", lambda: dataclasses.replace(SPEC, classes=()))
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"model": {"rmse": 40.0, "mae": 30.0, "r2": 0.46}}))

    batch, model = labelled_regression_batch(88, r2=0.33, seed=1)
    perf = quality.performance(batch, model, CFG, metrics)
    assert perf["primary"] == "r2" and perf["metrics"]["r2"] == pytest.approx(0.33)
    judged = perf["judged"]
    assert judged["beyond_tolerance"] and not judged["beyond_noise"]
    assert judged["upper_bound"] > 0.46 and perf["degraded"] is False

    batch, model = labelled_regression_batch(2000, r2=0.33, seed=2)
    perf = quality.performance(batch, model, CFG, metrics)
    assert perf["judged"]["beyond_noise"] and perf["degraded_metrics"] == ["r2"]
    assert set(perf["delta"]) == {"rmse", "mae", "r2"}  # reported; only R² is judged

    batch, model = labelled_regression_batch(2000, r2=0.40, seed=3)  # 0.06 lower: tolerated
    perf = quality.performance(batch, model, CFG, metrics)
    assert perf["judged"]["beyond_noise"] and not perf["judged"]["beyond_tolerance"]
    assert perf["degraded"] is False


def test_a_batch_is_read_in_every_format_ingest_reads(tmp_path: Path) -> None:
    """One table of name endings for training data and drift batches: a .tsv or a compressed
    CSV that ingest accepts is a batch drift accepts, with the same values."""
    from mlci import tables

    raw = pd.read_csv(EXAMPLE_RAW, dtype=str).head(60)
    raw.to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    raw.to_csv(tmp_path / "b.csv.gz", index=False)
    expected = tables.read_table(_write_csv(raw, tmp_path / "b.csv"), "batch")
    for name in ("b.tsv", "b.csv.gz"):
        got = tables.read_table(tmp_path / name, "batch")
        pd.testing.assert_frame_equal(got, expected)


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path
