"""Small helpers shared by every part of tvr: crash-safe writing, owned output folders, fingerprints, values."""

from .atomic import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    commit_directory,
    recover_directory,
    remove_leftovers,
    staging_directory,
)

__all__ = [
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "commit_directory",
    "recover_directory",
    "remove_leftovers",
    "staging_directory",
]
