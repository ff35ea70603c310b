"""One call of an evaluation while it runs: the run, its storage, the live thread, and the sink protocol."""
