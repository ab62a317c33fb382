"""Stage 03: Semantic IDs from item embeddings (quantizers x schemes)."""
from .ids import SemanticIds  # noqa: F401
