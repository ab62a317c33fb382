"""Two runs of the study, artifact by artifact: which stage's outputs are the same bytes, and the first that is not.

    python -m helpers.artifact_diff /tmp/run-a /tmp/run-b [--profile ml100k]

Both arguments are data roots (``SID_DATA_ROOT`` of each run). Artifacts are matched by their path
under ``runs/<profile>/`` (the stage, name and parameter hash), so only artifacts both runs
completed are compared, and one that only one run holds is listed as such. Files that record how a
run went rather than what it computed are left out: ``manifest.json`` (dates, timings, machine),
``card.json`` (training and encoding times), ``diagnostics.json`` (quantizer fit times) and the
``README.md`` model card sentence-transformers writes next to a fine-tuned model (its training
durations). Everything else (vectors, codes, model weights, predictions, tables) must be the same
bytes.

Stages are reported in pipeline order (:data:`STAGE_ORDER`), so the first differing artifact is the
place a divergence starts: everything downstream of it differs because of it.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Files that describe a run rather than its results (see the module docstring).
RUN_RECORDS = frozenset({"manifest.json", "card.json", "diagnostics.json", "README.md"})
#: Stage folders under runs/<profile>/, upstream first.
STAGE_ORDER = ("data", "embeddings", "semantic_ids", "text_states", "generative", "predictions",
               "decoder_comparison", "evaluation")


@dataclass
class ArtifactComparison:
    """One artifact path under runs/<profile>/ and how the two runs' copies compare."""

    stage: str
    path: str
    in_a: bool
    in_b: bool
    differing_files: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.in_a and self.in_b and not self.differing_files


def _digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def artifact_folders(root: Path, profile: str) -> dict[str, Path]:
    """Complete artifact folders (holding ``manifest.json``) of a data root, by path under runs/<profile>/."""
    base = Path(root) / "runs" / profile
    return {str(manifest.parent.relative_to(base)): manifest.parent for manifest in base.rglob("manifest.json")}


def _files(folder: Path) -> dict[str, Path]:
    return {str(f.relative_to(folder)): f for f in folder.rglob("*")
            if f.is_file() and f.name not in RUN_RECORDS}


def compare_artifact(a: Path, b: Path) -> list[str]:
    """Relative paths of the files that differ (or exist in one copy only), run records left out."""
    files_a, files_b = _files(a), _files(b)
    return sorted(name for name in set(files_a) | set(files_b)
                  if name not in files_a or name not in files_b or _digest(files_a[name]) != _digest(files_b[name]))


def _stage_rank(path: str) -> tuple[int, str]:
    stage = path.split("/", 1)[0]
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), path)


def compare_roots(root_a: Path, root_b: Path, profile: str = "ml100k") -> list[ArtifactComparison]:
    """Every artifact of either root, upstream stages first, with the files that differ.

    An artifact nested in another (the evaluation's ``tables/`` and ``figures/``) is compared as
    part of its parent, since ``_files`` walks the whole folder.
    """
    found_a, found_b = artifact_folders(root_a, profile), artifact_folders(root_b, profile)
    paths = sorted(set(found_a) | set(found_b), key=_stage_rank)
    paths = [p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths)]
    out = []
    for path in paths:
        a, b = found_a.get(path), found_b.get(path)
        differing = compare_artifact(a, b) if a is not None and b is not None else []
        out.append(ArtifactComparison(path.split("/", 1)[0], path, a is not None, b is not None, differing))
    return out


def summary_lines(comparisons: list[ArtifactComparison]) -> list[str]:
    """Per stage: how many artifacts both runs hold and how many are byte-identical; then every
    difference, the first one (in pipeline order) marked."""
    lines, stages = [], {}
    for item in comparisons:
        stages.setdefault(item.stage, []).append(item)
    for stage, items in stages.items():
        both = [i for i in items if i.in_a and i.in_b]
        lines.append(f"{stage}: {sum(i.identical for i in both)}/{len(both)} artifacts byte-identical"
                     + (f" ({len(items) - len(both)} in one run only)" if len(items) > len(both) else ""))
    first = next((i for i in comparisons if i.in_a and i.in_b and not i.identical), None)
    for item in comparisons:
        if item.in_a and item.in_b and not item.identical:
            mark = "FIRST DIFFERENCE " if item is first else ""
            lines.append(f"  {mark}{item.path}: {', '.join(item.differing_files[:5])}"
                         + (" ..." if len(item.differing_files) > 5 else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.artifact_diff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root_a", type=Path, help="the first run's data root")
    parser.add_argument("root_b", type=Path, help="the second run's data root")
    parser.add_argument("--profile", default="ml100k")
    args = parser.parse_args(argv)
    for root in (args.root_a, args.root_b):
        if not (root / "runs" / args.profile).is_dir():
            print(f"error: {root} holds no runs/{args.profile}/ folder; pass the data roots (SID_DATA_ROOT) "
                  "of two runs of that profile.", file=sys.stderr)
            return 2
    comparisons = compare_roots(args.root_a, args.root_b, args.profile)
    print("\n".join(summary_lines(comparisons)))
    return 0 if all(i.identical for i in comparisons if i.in_a and i.in_b) else 1


if __name__ == "__main__":
    sys.exit(main())
