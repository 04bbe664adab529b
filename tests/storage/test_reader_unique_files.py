"""Which files' rows the readers may skip de-duplicating (storage.reader.split_unique_files)."""

from __future__ import annotations

from spanlake.storage.reader import split_unique_files

P = "/lake/spans/project=a/date=2025-06-02"


def test_only_a_partitions_lone_compacted_file_is_known_distinct() -> None:
    files = [
        f"{P}/hour=01/compacted-1-aa.parquet",  # alone: distinct
        f"{P}/hour=02/seg-0.parquet",  # a flushed file: may hold a span twice
        f"{P}/hour=03/compacted-1-bb.parquet",  # a re-send arrived after the merge
        f"{P}/hour=03/seg-1.parquet",
        f"{P}/hour=04/compacted-1-cc.parquet",  # a merge in progress: both published
        f"{P}/hour=04/compacted-2-dd.parquet",
    ]
    once, rest = split_unique_files(files)
    assert once == [files[0]]
    assert rest == files[1:]


def test_partitions_are_told_apart_by_project_and_date_too() -> None:
    files = ["/l/spans/project=a/date=2025-06-02/hour=01/compacted-1.parquet",
             "/l/spans/project=b/date=2025-06-02/hour=01/compacted-1.parquet",
             "/l/spans/project=a/date=2025-06-03/hour=01/compacted-1.parquet"]  # fmt: skip
    assert split_unique_files(files) == (files, [])
    assert split_unique_files([]) == ([], [])
