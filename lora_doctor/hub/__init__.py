"""Hugging Face: token sources, repo look-ups, git credentials, tokens exposed in shell history."""
