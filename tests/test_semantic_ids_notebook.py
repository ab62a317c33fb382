"""Smoke test: notebook 03 runs end to end on the smoke profile and its recorded numbers hold together."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "03_semantic_ids.ipynb"


@pytest.mark.smoke
def test_notebook_03_builds_unique_ids_for_every_construction(smoke_cfg, tmp_path):
    import papermill

    from helpers.data.stage import build_dataset
    from helpers.embeddings.stage import build_embedding
    from helpers.notebook_results import read_records
    from helpers.semantic_ids.stage import construction_spec

    # upstream stages first (cached in the session's data root, which the kernel inherits)
    build_dataset(smoke_cfg)
    spaces = {space for name in smoke_cfg["semantic_ids"]["constructions"]
              for space in construction_spec(smoke_cfg, name)["spaces"].values()}
    for space in sorted(spaces):
        build_embedding(smoke_cfg, space)

    out = tmp_path / "03_semantic_ids.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"PROFILE": "smoke"},
                               kernel_name="python3", cwd=str(REPO))
    rec = read_records(out)

    names = list(smoke_cfg["semantic_ids"]["constructions"])
    assert rec["constructions"] == names
    assert all(rec["all_ids_unique"][name] for name in names)
    for name in names:
        for task, rate in rec["collision_rate"][name].items():
            assert 0.0 <= rate <= 1.0
            # an ID is the code levels plus a disambiguation token only when codes collide
            assert rec["id_length"][name][task] == rec["n_levels"] + (rate > 0)
    # 150 items on 8 x 8 = 64 slots: collisions are unavoidable
    assert rec["collision_rate"]["multitask"]["search"] > 0
    # separate: disjoint task vocabularies, about twice a shared construction's
    assert rec["vocabularies_disjoint"]["separate"]
    assert rec["vocabulary_size"]["separate"] > rec["vocabulary_size"]["multitask"]
    # prefix-share: both tasks start with the same shared token, then diverge into task tokens
    assert rec["shared_prefix"]["prefix_share"] and rec["vocabularies_disjoint"]["prefix_share"] is False
    # shared constructions: identical IDs for both tasks
    assert rec["shared_prefix"]["multitask"] and not rec["vocabularies_disjoint"]["multitask"]
    # RQ-KMeans keeps more of the vectors than the mean does
    assert rec["relative_reconstruction_error"]["multitask"]["shared"] < 1.0
    # content embeddings are built from texts that name the genres: a first token groups alike genres
    assert rec["genre_lift"]["content"]["shared"] > 1.0
    # the sweep: collisions fall as codebooks grow
    sweep = rec["codebook_sweep"]
    assert sweep["collision_rate"][0] > sweep["collision_rate"][-1]
