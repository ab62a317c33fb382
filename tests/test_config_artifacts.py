"""Profiles and the artifact cache."""
from pathlib import Path

import pytest

from helpers import artifacts
from helpers.config import load_profile, parse_assignment, parse_assignments, profile_names
from helpers.errors import MissingArtifactError, ProfileError


def test_every_profile_loads_and_extends_the_default():
    base = load_profile("ml100k")
    for name in profile_names():
        cfg = load_profile(name)
        assert cfg["name"] == name
        assert set(cfg) == set(base), "a profile must define exactly the default's stages"


def test_overrides_apply_and_typos_are_refused():
    assert load_profile("smoke", {"generative": {"epochs": 7}})["generative"]["epochs"] == 7
    with pytest.raises(ProfileError, match="epoch"):
        load_profile("smoke", {"generative": {"epoch": 7}})
    with pytest.raises(ProfileError, match="Unknown profile"):
        load_profile("no-such-profile")


def test_zero_seeds_and_unknown_methods_are_refused_up_front():
    with pytest.raises(ProfileError, match="seeds"):
        load_profile("smoke", {"generative": {"seeds": []}})
    bad = {"semantic_ids": {"constructions": {"x": {"space": "content", "quantizer": "kmeans++", "scheme": "shared"}}}}
    with pytest.raises(ProfileError, match="quantizer"):
        load_profile("smoke", bad)


def test_parse_assignment_reads_yaml_values():
    assert parse_assignment("generative.seeds=[0,1]") == {"generative": {"seeds": [0, 1]}}
    base = {"generative": {"epochs": 3}}
    merged = parse_assignments(["generative.seeds=[0,1]", "decoding.method=exact"], base)
    assert merged == {"generative": {"epochs": 3, "seeds": [0, 1]}, "decoding": {"method": "exact"}}
    assert base == {"generative": {"epochs": 3}}, "the base is not modified"
    with pytest.raises(ProfileError):
        parse_assignment("generative.seeds")


def test_stage_dir_hash_changes_with_parameters_only():
    cfg = load_profile("smoke")
    a = artifacts.stage_dir(cfg, "x", {"lr": 1, "epochs": 2})
    assert a == artifacts.stage_dir(cfg, "x", {"epochs": 2, "lr": 1})
    assert a != artifacts.stage_dir(cfg, "x", {"lr": 2, "epochs": 2})


def test_atomic_dir_leaves_nothing_behind_on_failure(tmp_path):
    final = tmp_path / "stage" / "abc"
    with pytest.raises(RuntimeError):
        with artifacts.atomic_dir(final) as tmp:
            (tmp / "half.txt").write_text("half-written")
            raise RuntimeError("interrupted")
    assert not final.exists()
    assert list((tmp_path / "stage").iterdir()) == []
    with artifacts.atomic_dir(final, {"k": 1}) as tmp:
        (tmp / "done.txt").write_text("ok")
    assert artifacts.is_complete(final) and artifacts.read_manifest(final)["k"] == 1


def test_require_names_the_producing_notebook(tmp_path: Path):
    with pytest.raises(MissingArtifactError, match="01_data"):
        artifacts.require(tmp_path / "missing", "The dataset", "notebooks/01_data.ipynb")
