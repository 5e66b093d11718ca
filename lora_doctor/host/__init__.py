"""The plugin host: find and load plugins, run their checks concurrently within budgets."""
