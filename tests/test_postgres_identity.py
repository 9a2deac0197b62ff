"""tests/test_identity.py on the PostgreSQL backend: the same tests, collected here with `hash_settings` pointing
at a database of their own (a fixture of this module overrides the shared one)."""

from __future__ import annotations

import pytest

from .test_identity import (  # noqa: F401  (collected from here, on this backend)
    test_a_changed_file_always_loses_its_old_passages,
    test_a_moved_file_keeps_its_passages,
    test_one_file_reached_from_two_folders_is_one_document,
    test_remove_by_resolved_path_or_id,
    test_the_same_relative_path_from_two_folders_is_two_documents,
)


@pytest.fixture
def hash_settings(pg_settings):  # type: ignore[no-untyped-def]
    return pg_settings
