"""The standard-library corpus: what it holds, its determinism, its splits, its manifest and its cache."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from circuitlab.data import (
    END_OF_TEXT,
    CorpusOptions,
    build_corpus,
    collect_documents,
    default_cache_dir,
    find_source_files,
    split_of,
    stdlib_root,
)
from circuitlab.data.files import atomic_output
from circuitlab.errors import ConfigError, InputError

OPTIONS = CorpusOptions(validation_fraction=0.5)


def test_source_files_leave_out_tests_installed_packages_build_config_and_topics_module(fake_stdlib: Path) -> None:
    assert find_source_files(fake_stdlib) == [
        "abc.py",
        "bisect.py",
        "copy.py",
        "email/__init__.py",
        "email/header.py",
        "encodings/latin.py",
        "json/__init__.py",
        "json/decoder.py",
        "json/encoder.py",
        "pydoc_data/__init__.py",
        "xml/copy_of_decoder.py",
    ]


def test_include_tests_adds_every_test_folder(fake_stdlib: Path) -> None:
    with_tests = set(find_source_files(fake_stdlib, include_tests=True)) - set(find_source_files(fake_stdlib))
    assert with_tests == {
        "test/test_abc.py",
        "unittest/test/test_case.py",
        "lib2to3/tests/test_all.py",
        "idlelib/idle_test/test_run.py",
    }


def test_file_that_is_not_utf8_is_skipped_and_listed(fake_stdlib: Path) -> None:
    corpus = build_corpus(fake_stdlib, options=OPTIONS)
    assert corpus.manifest["skipped"]["not_utf8"] == ["encodings/latin.py"]
    assert all(entry["path"] != "encodings/latin.py" for entry in corpus.manifest["documents"])


def test_duplicate_content_is_kept_once_under_its_first_path(fake_stdlib: Path) -> None:
    collected = collect_documents(fake_stdlib, OPTIONS)
    paths = [document.path for document in collected.documents]
    assert collected.duplicates == {"xml/copy_of_decoder.py": "json/decoder.py"}
    assert "json/decoder.py" in paths and "xml/copy_of_decoder.py" not in paths


def test_empty_files_are_dropped(fake_stdlib: Path) -> None:
    collected = collect_documents(fake_stdlib, OPTIONS)
    assert collected.empty == ["email/__init__.py"]


def test_documentation_topics_are_prose_documents(fake_stdlib: Path) -> None:
    documents = {document.path: document.data for document in collect_documents(fake_stdlib, OPTIONS).documents}
    assert documents["pydoc_data/topics.py#if"].startswith(b'The "if" statement\n***')
    assert "pydoc_data/topics.py" not in documents


def test_topics_can_be_left_out(fake_stdlib: Path) -> None:
    options = CorpusOptions(validation_fraction=0.5, include_topics=False)
    assert not any("#" in document.path for document in collect_documents(fake_stdlib, options).documents)


def test_documents_are_in_sorted_path_order(fake_stdlib: Path) -> None:
    paths = [document.path for document in collect_documents(fake_stdlib, OPTIONS).documents]
    assert paths == sorted(paths)


def test_split_text_is_each_document_followed_by_end_of_text(fake_stdlib: Path) -> None:
    corpus = build_corpus(fake_stdlib, options=OPTIONS)
    documents = {document.path: document.data for document in collect_documents(fake_stdlib, OPTIONS).documents}
    for split in ("train", "validation"):
        paths = [entry["path"] for entry in corpus.manifest["documents"] if entry["split"] == split]
        expected = b"".join(documents[path] + END_OF_TEXT.encode() for path in paths)
        assert corpus.path(split).read_bytes() == expected


def test_documents_iterator_gives_back_each_document(fake_stdlib: Path) -> None:
    corpus = build_corpus(fake_stdlib, options=OPTIONS)
    documents = list(corpus.documents("train"))
    assert len(documents) == corpus.manifest["splits"]["train"]["documents"]
    assert END_OF_TEXT.join(documents) + END_OF_TEXT == corpus.read_text("train")


def test_building_twice_gives_the_same_bytes(fake_stdlib: Path, tmp_path: Path) -> None:
    first = build_corpus(fake_stdlib, tmp_path / "cache-a", OPTIONS)
    second = build_corpus(fake_stdlib, tmp_path / "cache-b", OPTIONS)
    assert first.folder != second.folder
    assert first.sha256 == second.sha256
    for split in ("train", "validation"):
        assert first.path(split).read_bytes() == second.path(split).read_bytes()


def test_manifest_hashes_and_sizes_describe_the_split_files(fake_stdlib: Path) -> None:
    corpus = build_corpus(fake_stdlib, options=OPTIONS)
    for split in ("train", "validation"):
        data = corpus.path(split).read_bytes()
        summary = corpus.manifest["splits"][split]
        assert summary["sha256"] == hashlib.sha256(data).hexdigest()
        assert summary["bytes"] == len(data)


def test_manifest_records_python_version_and_counts(fake_stdlib: Path) -> None:
    manifest = build_corpus(fake_stdlib, options=OPTIONS).manifest
    assert manifest["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert manifest["splits"]["train"]["documents"] + manifest["splits"]["validation"]["documents"] == 10
    assert manifest["splits"]["train"]["topics"] + manifest["splits"]["validation"]["topics"] == 2


def test_split_of_a_document_does_not_change_when_other_files_appear(fake_stdlib: Path, tmp_path: Path) -> None:
    manifest = build_corpus(fake_stdlib, options=OPTIONS).manifest
    before = {entry["path"]: entry["split"] for entry in manifest["documents"]}
    for index in range(20):
        (fake_stdlib / f"extra_{index}.py").write_text(f"value = {index}\n")
    after = build_corpus(fake_stdlib, tmp_path / "other-cache", OPTIONS).manifest["documents"]
    assert {entry["path"]: entry["split"] for entry in after if entry["path"] in before} == before


def test_validation_fraction_is_the_share_of_paths_in_validation() -> None:
    paths = [f"package_{index}/module.py" for index in range(20_000)]
    share = sum(split_of(path, 0.03) == "validation" for path in paths) / len(paths)
    assert share == pytest.approx(0.03, abs=0.005)


def test_validation_fraction_outside_zero_one_is_rejected() -> None:
    with pytest.raises(ConfigError, match="validation_fraction"):
        CorpusOptions(validation_fraction=1.0)


def test_intact_build_is_reused(fake_stdlib: Path) -> None:
    first = build_corpus(fake_stdlib, options=OPTIONS)
    modified = first.path("train").stat().st_mtime_ns
    second = build_corpus(fake_stdlib, options=OPTIONS)
    assert second.folder == first.folder
    assert second.path("train").stat().st_mtime_ns == modified


def test_damaged_build_is_rebuilt(fake_stdlib: Path) -> None:
    corpus = build_corpus(fake_stdlib, options=OPTIONS)
    original = corpus.path("train").read_bytes()
    corpus.path("train").write_bytes(original[:10])
    assert build_corpus(fake_stdlib, options=OPTIONS).path("train").read_bytes() == original


def test_different_options_build_into_different_folders(fake_stdlib: Path) -> None:
    default = build_corpus(fake_stdlib, options=OPTIONS)
    with_tests = build_corpus(fake_stdlib, options=CorpusOptions(validation_fraction=0.5, include_tests=True))
    assert default.folder != with_tests.folder
    assert default.sha256 != with_tests.sha256


def test_build_writes_into_circuitlab_cache(fake_stdlib: Path, private_cache: Path) -> None:
    assert default_cache_dir() == private_cache
    assert build_corpus(fake_stdlib, options=OPTIONS).folder.is_relative_to(private_cache)


def test_build_leaves_no_temporary_files(fake_stdlib: Path) -> None:
    corpus = build_corpus(fake_stdlib, options=OPTIONS)
    assert sorted(path.name for path in corpus.folder.iterdir()) == ["manifest.json", "train.txt", "validation.txt"]


def test_missing_root_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        build_corpus(tmp_path / "nowhere")


def test_root_without_python_sources_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="found no Python sources"):
        build_corpus(tmp_path)


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(path) as temporary:
        temporary.write_text("half of the new")
        raise RuntimeError("crash in the middle of a write")
    assert path.read_text() == "old"
    assert [entry.name for entry in tmp_path.iterdir()] == ["data.txt"]


def test_real_standard_library_corpus_has_the_expected_shape() -> None:
    corpus = build_corpus(stdlib_root())
    manifest = corpus.manifest
    paths = [entry["path"] for entry in manifest["documents"]]
    assert len(paths) > 500
    assert {"json/decoder.py", "pydoc_data/topics.py#assert"} <= set(paths)
    assert not any(part in {"test", "tests", "idle_test", "site-packages"} for p in paths for part in p.split("/"))
    assert manifest["splits"]["train"]["bytes"] > 5_000_000
    assert manifest["splits"]["validation"]["documents"] > 0
    assert hashlib.sha256(corpus.path("validation").read_bytes()).hexdigest() == corpus.sha256["validation"]
