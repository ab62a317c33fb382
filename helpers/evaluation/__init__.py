"""Stage 05/06: metrics, significance tests, the paper's tables and Pareto plots."""
