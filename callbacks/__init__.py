"""Lightning callbacks that own GainAKT's cross-cutting behaviour (monitoring, checks, checkpoints),
installed as ``gainakt.callbacks`` (the folder sits at the top of the repository)."""
