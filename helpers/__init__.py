"""Semantic IDs for joint generative search and recommendation: the study's working code.

Every stage of the study is a plain function in a sub-package (``data``, ``embeddings``,
``semantic_ids``, ``generative``, ``evaluation``); notebooks only call them.
"""

import os

from .environment import pin_kernels

# BLAS and torch kernels chosen by CPU type decide the last bits of float sums, and those bits
# recoded items between machines; pin the kernel family where the CPU runs it
# (docs/reproducibility.md). Only libraries loaded after this call are affected.
pin_kernels()
# With OpenMP's default (active) wait policy, torch's worker threads spin while waiting; on a
# 2-core machine shared with other processes that made MiniLM fine-tuning 5-10x slower
# (benchmarks/README_embeddings.md). It only takes effect if set before torch is first imported,
# which is why it lives in the package root that every notebook and test imports first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
