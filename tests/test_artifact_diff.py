"""Artifact-by-artifact comparison of two runs: the first differing stage is named."""
from __future__ import annotations

import json

from helpers.artifact_diff import compare_roots, main, summary_lines


def artifact(root, path, files):
    folder = root / "runs" / "toy" / path
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    (folder / "manifest.json").write_text(json.dumps({"created": str(root)}))  # differs: a run record
    return folder


def two_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, codes, weights in ((a, b"\x01\x02", b"w1"), (b, b"\x01\x02", b"w2")):
        artifact(root, "data/h1", {"items.parquet": b"items"})
        artifact(root, "semantic_ids/search/h2", {"codes.npy": codes, "diagnostics.json": str(root).encode()})
        artifact(root, "generative/search-seed0/h3", {"model.safetensors": weights, "card.json": str(root).encode()})
        artifact(root, "predictions/search-seed0-test/h4", {"predictions.parquet": weights})
    artifact(a, "evaluation/h5", {"hits.parquet": b"x"})
    artifact(a, "evaluation/h5/tables", {"table1.csv": b"t"})
    return a, b


def test_run_records_are_ignored_and_the_first_difference_is_upstream(tmp_path):
    a, b = two_runs(tmp_path)
    comparisons = compare_roots(a, b, "toy")
    assert [c.path for c in comparisons][:2] == ["data/h1", "semantic_ids/search/h2"]  # pipeline order
    by_path = {c.path: c for c in comparisons}
    assert by_path["data/h1"].identical and by_path["semantic_ids/search/h2"].identical
    assert by_path["generative/search-seed0/h3"].differing_files == ["model.safetensors"]
    assert "evaluation/h5/tables" not in by_path  # compared inside its parent
    assert by_path["evaluation/h5"].in_a and not by_path["evaluation/h5"].in_b
    lines = summary_lines(comparisons)
    assert "generative: 0/1 artifacts byte-identical" in lines
    assert "evaluation: 0/0 artifacts byte-identical (1 in one run only)" in lines
    assert any(line.startswith("  FIRST DIFFERENCE generative/search-seed0/h3") for line in lines)
    assert sum("FIRST DIFFERENCE" in line for line in lines) == 1


def test_command_line_exit_codes(tmp_path, capsys):
    a, b = two_runs(tmp_path)
    assert main([str(a), str(b), "--profile", "toy"]) == 1
    assert main([str(a), str(a), "--profile", "toy"]) == 0
    assert main([str(a), str(tmp_path / "nowhere"), "--profile", "toy"]) == 2
    assert "holds no runs/toy/" in capsys.readouterr().err
