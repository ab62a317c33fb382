"""Stage 03: Semantic IDs from item embeddings (quantizers x schemes).

* ``quantizers``: RQ-KMeans (FAISS), dictionary encoding, ResidualLFQ, RQ-VAE behind ``get_quantizer``,
  plus the prefix-share model;
* ``collisions``: collision statistics and the TIGER-style disambiguation token;
* ``tokens``: codes -> level-prefixed token strings (``<a_12><b_34><c_3>``);
* ``schemes``: shared / separate / prefix_share IDs (``build_ids``);
* ``diagnostics``: utilisation, perplexity, reconstruction error, genre agreement, tables;
* ``stage``: ``semantic_ids_dir`` / ``build_semantic_ids`` / ``load_semantic_ids`` /
  ``build_all_semantic_ids`` (cached artifacts, the contract of ``ids.SemanticIds``).
"""
from .ids import SemanticIds  # noqa: F401
from .quantizers import (  # noqa: F401
    QUANTIZERS,
    EmbeddingMatrixError,
    SemanticIdConfigError,
    get_quantizer,
)
from .schemes import SCHEMES, build_ids  # noqa: F401
