"""GainAKT: an interpretable dual-encoder knowledge-tracing trainer (Lightning + Hydra)."""

__version__ = "0.1.0"
