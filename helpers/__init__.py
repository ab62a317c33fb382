"""Semantic IDs for joint generative search and recommendation: the study's working code.

Every stage of the study is a plain function in a sub-package (``data``, ``embeddings``,
``semantic_ids``, ``generative``, ``evaluation``); notebooks only call them.
"""

__version__ = "0.1.0"
