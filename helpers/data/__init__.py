"""Stage 01: the search & recommendation dataset (catalogue, interactions, queries)."""
from .dataset import Dataset  # noqa: F401
