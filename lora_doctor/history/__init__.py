"""The run history: the store, fingerprints of a run's inputs, the diff between two runs."""
