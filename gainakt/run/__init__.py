"""The run folder and its lifecycle: file names, atomic writes, checkpoints, the epoch CSV, the
summary, config composition and checking, shared by every command."""
