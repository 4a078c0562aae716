"""toolkit's benchmarks: the same small app per framework, timed in process and served."""
