"""The order of the study's stages, and the command that builds what is missing.

A stage that cannot find its input says which notebooks to run, starting from the first stage whose
artifact is missing for this profile (building 04 is no help when 02 was never run)::

    >>> rerun_command({"name": "smoke"}, ["02", "03", "04"])
    'bash run.sh study --profile smoke --only 02 03 04'
"""
from __future__ import annotations

import re

from . import artifacts

#: Notebook number -> what it produces, in pipeline order.
STAGES = {"01": "dataset", "02": "embeddings", "03": "semantic_ids", "04": "generative", "05": "evaluation"}


def notebook_number(produced_by: str) -> str | None:
    """``"notebooks/04_generative_training.ipynb"`` -> ``"04"`` (None when it names no notebook)."""
    match = re.search(r"(\d\d)_\w+\.ipynb", produced_by)
    return match.group(1) if match else None


def stage_complete(cfg: dict, number: str) -> bool:
    """Whether every artifact notebook ``number`` builds for this profile exists (cheap: no loading)."""
    from .data.stage import dataset_dir
    from .registry import construction_names

    if number == "01":
        return artifacts.is_complete(dataset_dir(cfg))
    constructions = construction_names(cfg)
    if number == "02":
        from .embeddings.stage import embedding_dir
        from .semantic_ids.stage import construction_spec

        spaces = {s for c in constructions for s in construction_spec(cfg, c)["spaces"].values()}
        return all(artifacts.is_complete(embedding_dir(cfg, s)) for s in spaces)
    if number == "03":
        from .semantic_ids.stage import semantic_ids_dir

        return all(artifacts.is_complete(semantic_ids_dir(cfg, c)) for c in constructions)
    if number == "04":
        from .generative.stage import model_dir

        return all(artifacts.is_complete(model_dir(cfg, c, s)) for c in constructions
                   for s in cfg["generative"]["seeds"])
    return False


def missing_notebooks(cfg: dict, upto: str) -> list[str]:
    """Notebook numbers to run, from the first incomplete stage up to ``upto`` included."""
    numbers = [n for n in STAGES if n <= upto]
    for i, number in enumerate(numbers[:-1]):
        try:
            complete = stage_complete(cfg, number)
        except Exception:  # a broken profile or upstream: start from there
            complete = False
        if not complete:
            return numbers[i:]
    return [upto]


def rerun_command(cfg: dict, notebooks: list[str]) -> str:
    return f"bash run.sh study --profile {cfg['name']} --only {' '.join(notebooks)}"


def missing_hint(cfg: dict, produced_by: str) -> str:
    """What to run so that the artifact ``produced_by`` makes exists (the command, or the notebook)."""
    number = notebook_number(produced_by)
    if number is None or number not in STAGES:
        return f"Run {produced_by} first."
    command = rerun_command(cfg, missing_notebooks(cfg, number))
    return (f"Run `{command}` first (add the same --set overrides if you used any), or open "
            f"{produced_by} in Jupyter with the same PROFILE and OVERRIDES.")
