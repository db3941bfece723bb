"""params.yaml: typed, frozen, strict; every params key dvc.yaml names exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from pipelines.config import ParamsError, load_params
from tests.conftest import PROJECT


def _dvc_param_keys() -> list[tuple[str, str]]:
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    keys = []
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            if isinstance(entry, dict):  # {file: [keys]}
                keys += [(name, k) for ks in entry.values() for k in ks]
            else:
                keys.append((name, entry))
    return keys


def test_project_params_validate(params):
    assert params.generate.customers >= 10_000
    assert params.validate_.max_quarantine_share == 0.05
    assert set(params.tariffs.by_class()) == {
        "residential",
        "commercial",
        "industrial",
        "large_industrial",
        "agricultural",
    }


@pytest.mark.parametrize(("stage", "key"), _dvc_param_keys())
def test_every_dvc_params_key_exists(stage, key):
    node = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, (
            f"stage {stage}: params key {key} not in params.yaml"
        )
        node = node[part]


def test_dvc_yaml_names_params_keys():
    assert len(_dvc_param_keys()) >= 4


def test_params_are_frozen(params):
    with pytest.raises(ValidationError):
        params.generate.customers = 5


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda r: r["generate"].update(custmers=5), ["generate.custmers", "Extra inputs"]),
        (lambda r: r.update(unknown_section={}), ["unknown_section"]),
        (lambda r: r["generate"].update(start_period="2023-13"), ["generate.start_period"]),
        (
            lambda r: r["validate"].update(max_quarantine_share=1.5),
            ["validate.max_quarantine_share"],
        ),
        (lambda r: r["tariffs"].pop("agricultural"), ["tariffs.agricultural", "Field required"]),
        (
            lambda r: r["tariffs"]["residential"].update(preferential_price_per_kwh=9.0),
            ["preferential_price_per_kwh is above price_per_kwh"],
        ),
    ],
)
def test_bad_params_are_rejected_with_the_key(tmp_path, mutate, words):
    with pytest.raises(ParamsError) as err:
        load_params(_write(tmp_path, mutate))
    for word in words:
        assert word in str(err.value)


def test_missing_params_file(tmp_path):
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")
