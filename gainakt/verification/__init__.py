"""Verification of encoder 2: trajectories, the checks as pure functions, their writers and plots,
and the gain statistics that the per-epoch monitors share with the final checks."""
