"""Package data: the options table and the probe script run in the target interpreter."""
