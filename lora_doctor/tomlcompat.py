"""TOML parsing on every supported Python: the standard `tomllib`, or its backport `tomli` on 3.10."""

try:
    from tomllib import TOMLDecodeError, load, loads
except ImportError:  # Python 3.10
    from tomli import TOMLDecodeError, load, loads

__all__ = ["TOMLDecodeError", "load", "loads"]
