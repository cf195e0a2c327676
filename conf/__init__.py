"""GainAKT's Hydra configs, shipped as package data of ``gainakt.conf`` (found with ``pkg://gainakt.conf``)."""
