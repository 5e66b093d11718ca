"""The known-error database: TOML signature files, one per family (format: README.md here)."""
