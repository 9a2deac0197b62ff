"""A small error hierarchy. Library code raises these; the CLI and the UI turn them into one readable line."""

from __future__ import annotations


class ArrivalError(Exception):
    """Base class for every error arrival reports to a user."""


class IngestError(ArrivalError):
    """A file could not be read or turned into chunks. The message names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[IngestError], tuple[str, str]]:  # survives a trip through a worker
        return (IngestError, (self.path, self.reason))


class IndexBuildError(ArrivalError):
    """The index could not be written."""


class IndexOpenError(ArrivalError):
    """The index on disk is missing, corrupt, or was built with another embedder."""


class ModelError(ArrivalError):
    """An embedding or chat model is missing, cannot be fetched, or is misconfigured."""


class LockedError(ArrivalError):
    """Another process holds the index write lock."""


class SettingsError(ArrivalError):
    """Invalid configuration."""
