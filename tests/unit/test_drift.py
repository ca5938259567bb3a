"""Drift statistics, the prediction-log reader and the decision rule, in process.

Batches are built from the bundled sample (data/sample/penguins-raw.csv, cleaned as ingest
does), so these tests need no pipeline run.
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
from mlci.monitoring import batches, statistics
from project.cleaning import clean_raw

REPO = Path(__file__).resolve().parents[2]
CFG = MonitorConfig()
SPEC = contract.spec()


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    raw = pd.read_csv(REPO / "data/sample/penguins-raw.csv")
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
    params = load_params(REPO / "params.yaml")
    assert params.monitor.correction in ("holm", "bonferroni")
    assert 0 < params.monitor.alpha <= 0.05
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
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
