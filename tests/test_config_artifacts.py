"""Profiles and the artifact cache."""
import re
from pathlib import Path

import pytest

from helpers import artifacts
from helpers.config import (FREE_FORM, check_codebook_size, documented_types, load_profile, parse_assignment,
                            parse_assignments, profile_names)
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


# ---- every documented parameter is typed and range-checked, before any work ----------------------
def _leaves(tree: dict, prefix: str = "") -> set[str]:
    found = set()
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in FREE_FORM:
            found |= _leaves(value, dotted + ".")
        else:
            found.add(dotted)
    return found


def test_every_parameter_of_the_base_profile_documents_its_type():
    documented = documented_types()
    assert _leaves(load_profile("ml100k")) - {"name"} <= set(documented), "a parameter lacks its # (type) comment"
    assert documented["generative.seeds"] == "list[int]" and documented["data.max_users"] == "int|null"


@pytest.mark.parametrize("assignment, message", [
    ("evaluation.k=abc", "evaluation.k must be of type int, got 'abc'"),
    ("generative.seeds=[x]", r"generative.seeds must be of type list\[int\]"),
    ("generative.seeds=[-1]", "generative.seeds must be >= 0"),
    ("generative.epochs=0", "generative.epochs must be >= 1"),
    ("decoding.num_beams=0", "decoding.num_beams must be >= 1"),
    ("generative.lr=0", "generative.lr must be > 0"),
    ("generative.dropout=1.5", r"generative.dropout must lie in \[0, 1\)"),
    ("decoding.exclude_history=maybe", "decoding.exclude_history must be of type bool"),
    ("data.max_users=many", "data.max_users must be of type int or null"),
])
def test_bad_types_and_ranges_are_refused_with_the_parameter_named(assignment, message):
    with pytest.raises(ProfileError, match=message):
        load_profile("smoke", parse_assignment(assignment))


@pytest.mark.parametrize("size", [1, 12, 65536])
def test_a_bad_codebook_size_is_refused_with_a_suggestion_that_passes(size):
    n_items = 150  # the smoke catalogue
    cfg = load_profile("smoke")
    cfg["semantic_ids"]["codebook_size"] = size
    with pytest.raises(ProfileError, match="codebook_size") as refused:
        check_codebook_size(cfg, n_items)
    suggested = int(re.search(r"suits two levels: (\d+)", str(refused.value)).group(1))
    cfg["semantic_ids"]["codebook_size"] = suggested
    check_codebook_size(cfg, n_items)  # the suggestion itself passes every rule


def test_a_codebook_larger_than_the_catalogue_fails_in_the_data_stage_not_after_the_embeddings():
    from helpers.data.stage import build_dataset

    cfg = load_profile("smoke", {"semantic_ids": {"codebook_size": 128}})  # 128 <= max_items 150: passes up front
    build_dataset(cfg)
    too_big = load_profile("smoke", {"data": {"max_items": 100}, "semantic_ids": {"codebook_size": 64}})
    with pytest.raises(ProfileError, match="cannot exceed the 100 items"):
        load_profile("smoke", {"data": {"max_items": 100}, "semantic_ids": {"codebook_size": 128}})
    assert too_big  # 64 fits 100 items


# ---- caches invalidate only what changed ---------------------------------------------------------
def test_one_quantizers_setting_moves_only_the_constructions_that_use_it():
    from helpers.generative.stage import model_dir
    from helpers.semantic_ids.stage import semantic_ids_dir

    cfg = load_profile("ml100k")
    changed = load_profile("ml100k", {"semantic_ids": {"quantizers": {"rqvae": {"epochs": 7}}}})
    uses_rqvae = {name for name, spec in cfg["semantic_ids"]["constructions"].items() if spec["quantizer"] == "rqvae"}
    assert uses_rqvae == {"prefix_share", "multitask_rqvae"}
    for name in cfg["semantic_ids"]["constructions"]:
        same_ids = semantic_ids_dir(cfg, name) == semantic_ids_dir(changed, name)
        same_model = model_dir(cfg, name, 0) == model_dir(changed, name, 0)
        assert same_ids == same_model == (name not in uses_rqvae), name


def test_settings_of_an_unused_backbone_or_generator_do_not_move_the_cache():
    from helpers.data.stage import dataset_dir
    from helpers.generative.stage import model_dir

    cfg = load_profile("smoke")
    assert dataset_dir(cfg) == dataset_dir(load_profile("smoke", {"data": {"queries": {"llm_max_retries": 9}}}))
    assert dataset_dir(cfg) != dataset_dir(load_profile("smoke", {"data": {"queries": {"per_item": 3}}}))
    hub = {"generative": {"backbone": "some/checkpoint"}}
    assert model_dir(load_profile("smoke", hub), "search", 0) == model_dir(
        load_profile("smoke", {**hub, "generative": {**hub["generative"], "d_model": 32}}), "search", 0)
    assert model_dir(cfg, "search", 0) != model_dir(load_profile("smoke", {"generative": {"d_model": 32}}), "search", 0)


# ---- a missing artifact names the real command, from the first missing stage ---------------------
def test_a_missing_model_names_the_command_from_the_first_missing_stage():
    from helpers.data.stage import build_dataset
    from helpers.generative.stage import load_model

    cfg = load_profile("smoke", {"data": {"seed": 7}})  # a dataset no other test builds
    with pytest.raises(MissingArtifactError, match=r"bash run\.sh study --profile smoke --only 01 02 03 04"):
        load_model(cfg, "search", 0)
    build_dataset(cfg)
    with pytest.raises(MissingArtifactError, match=r"--only 02 03 04`"):
        load_model(cfg, "search", 0)
