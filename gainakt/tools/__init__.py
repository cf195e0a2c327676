"""Tools around training: the benchmark, tensor-memory accounting and the sweep report."""
