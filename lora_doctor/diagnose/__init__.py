"""Logs to diagnoses: read bytes, parse failures, load signatures, match, test signatures, print the report."""
