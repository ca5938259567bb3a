"""dvc.yaml, paths.py and the contract agree with each other."""

from __future__ import annotations

import yaml

from mlci import contract, paths
from tests.helpers import REPO


def declared() -> set[str]:
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    found = set()
    for stage in dvc["stages"].values():
        for section in ("outs", "metrics", "deps"):
            for item in stage.get(section, []):
                found.add(next(iter(item)) if isinstance(item, dict) else item)
    return found


def test_every_stage_path_is_declared_in_dvc_yaml() -> None:
    names = [n for n in dir(paths) if n.isupper() and n not in ("REPORTS", "PLOTS")]
    missing = {str(getattr(paths, n)) for n in names} - declared()
    assert not missing, f"paths.py names files dvc.yaml does not declare: {sorted(missing)}"


def test_every_stage_calls_the_cli() -> None:
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert list(dvc["stages"]) == ["ingest", "validate", "split", "train", "evaluate"]
    for name, stage in dvc["stages"].items():
        assert stage["cmd"] == f"mlci {name}"


def test_contract_spec_reads_the_schema() -> None:
    spec = contract.spec()
    assert spec.target == "species" and spec.classes == ("Adelie", "Chinstrap", "Gentoo")
    assert spec.numeric == [
        "culmen_length_mm",
        "culmen_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
    ]
    assert spec.categorical == ["island", "sex"]
    mass = next(f for f in spec.features if f.name == "body_mass_g")
    assert (mass.minimum, mass.maximum, mass.nullable) == (2000.0, 7000.0, True)
