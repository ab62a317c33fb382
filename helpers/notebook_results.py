"""Record a notebook's headline numbers so tests and the study runner can read them back.

recommenders-style: a notebook's last cell calls ``record(search_recall=0.12, ...)``; the values
are displayed as a JSON output with our own MIME type, so they survive in the executed .ipynb
and ``read_records(path)`` returns them as a dict without re-running anything.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MIME = "application/x-sid-record+json"


def _plain(value: Any) -> Any:
    """Make numpy scalars/arrays and pandas objects JSON-friendly."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def record(**values: Any) -> dict:
    """Display ``values`` as a record in the running notebook (a no-op outside IPython)."""
    payload = {k: _plain(v) for k, v in values.items()}
    try:
        from IPython.display import display

        display({MIME: payload, "text/plain": json.dumps(payload, default=str)[:2000]}, raw=True)
    except ImportError:  # pragma: no cover - plain Python
        pass
    return payload


def read_records(notebook_path: str | Path) -> dict:
    """All values recorded in an executed notebook (later records override earlier ones)."""
    nb = json.loads(Path(notebook_path).read_text())
    found: dict = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if MIME in data:
                found.update(data[MIME])
    return found
