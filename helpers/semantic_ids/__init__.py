"""Stage 03: Semantic IDs from item embeddings (quantizers x schemes).

* ``quantizers``: RQ-KMeans (FAISS), dictionary encoding, ResidualLFQ, RQ-VAE behind ``get_quantizer``
  (names: ``helpers.registry.QUANTIZERS``; settings: the profile's ``semantic_ids.quantizers.<name>``),
  the neural models as ``nn.Module`` classes (``RqVae``, ``LfqAutoencoder``, ``PrefixShareVae``), and
  the prefix-share model's trainer ``PrefixShareQuantizer``;
* ``collisions``: collision statistics and the TIGER-style disambiguation token;
* ``tokens``: codes -> level-prefixed token strings (``<a_12><b_34><c_3>``);
* ``schemes``: shared / separate / prefix_share IDs (``build_ids``; names: ``helpers.registry.SCHEMES``);
  ``used_params`` is the part of the ``semantic_ids`` section one construction reads;
* ``diagnostics``: utilisation, perplexity, reconstruction error, genre agreement, tables;
* ``stage``: ``semantic_ids_dir`` / ``build_semantic_ids`` / ``load_semantic_ids`` /
  ``build_all_semantic_ids`` (cached artifacts, the contract of ``ids.SemanticIds``).
"""
from .ids import SemanticIds  # noqa: F401
from .quantizers import (  # noqa: F401
    QUANTIZERS,
    EmbeddingMatrixError,
    LfqAutoencoder,
    PrefixShareVae,
    RqVae,
    SemanticIdConfigError,
    get_quantizer,
    quantizer_settings,
)
from .schemes import SCHEMES, build_ids, used_params  # noqa: F401
