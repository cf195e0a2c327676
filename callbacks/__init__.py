"""Lightning callbacks that own GainAKT's cross-cutting behaviour (schedules, monitoring, checks)."""
