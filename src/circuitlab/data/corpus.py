"""A text corpus that every machine with Python already has: the standard library's sources and docs.

What goes in (and why):

- every ``.py`` file under the standard library folder (``sysconfig.get_paths()["stdlib"]``), read as
  exact bytes; files that are not valid UTF-8 are skipped and listed in the manifest;
- not ``site-packages``/``dist-packages`` (what the user installed differs between machines), not
  ``_sysconfigdata*.py`` or ``config-*/`` (the build's compiler flags and install paths), and not
  ``pydoc_data/topics.py`` as code (its text is added as prose instead, see below);
- by default not the test folders ``test``/``tests``/``idle_test``: Debian and Ubuntu ship them in a
  separate package (``libpython3.X-testsuite``) that many machines lack, and they would be 60% of the
  corpus (31.2 MB with them, 11.8 MB without, CPython 3.11), including deliberately odd inputs (bad
  encodings, bad syntax). ``CorpusOptions(include_tests=True)`` puts them back;
- the documentation topics of ``pydoc_data.topics.topics`` (English prose, ~0.47 MB), one document per
  topic, read from the root folder's ``pydoc_data/topics.py`` with ``ast.literal_eval`` (nothing imported).

Documents are sorted by relative path (topics are named ``pydoc_data/topics.py#<topic>``), empty ones
dropped, duplicates removed by content hash (the first in sorted order is kept), and each document is
followed by ``<|endoftext|>``. A document goes to the validation split when a hash of its relative path
falls below ``validation_fraction``, so adding or removing one file never moves another.

The same root gives the same bytes. Two machines give the same corpus when their standard libraries
hold the same files: same Python release, and not a distribution that leaves packages out (Debian
splits off ``idlelib``, ``tkinter``, ``lib2to3``, ``distutils``, ``ensurepip``). The manifest lists
each document with its hash, so two corpora can be compared file by file.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from circuitlab.data.files import (
    default_cache_dir,
    read_json,
    sha256_file,
    short_hash,
    write_bytes_atomic,
    write_json_atomic,
)
from circuitlab.errors import ConfigError, InputError

END_OF_TEXT = "<|endoftext|>"
CORPUS_FORMAT_VERSION = 1
Split = Literal["train", "validation"]
SPLITS: tuple[Split, ...] = ("train", "validation")

ALWAYS_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
TEST_DIRS = frozenset({"test", "tests", "idle_test"})
TOPICS_FILE = "pydoc_data/topics.py"


@dataclass(frozen=True)
class CorpusOptions:
    """What the corpus holds and how it is split; part of the cache key."""

    # 3% of the documents: 2.3% of the bytes of CPython 3.11's (2% of documents happened to hold only 0.9%).
    validation_fraction: float = 0.03
    include_tests: bool = False
    include_topics: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ConfigError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")


@dataclass(frozen=True)
class Document:
    """One corpus document: a source file or a documentation topic."""

    path: str  # relative POSIX path, e.g. "json/decoder.py" or "pydoc_data/topics.py#assert"
    data: bytes  # exact UTF-8 bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class CollectedDocuments:
    """The documents kept, and every file left out with the reason."""

    documents: list[Document] = field(default_factory=list)
    not_utf8: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    contains_end_of_text: list[str] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)  # skipped path -> path of the kept copy


def stdlib_root() -> Path:
    """The folder that holds this interpreter's standard library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def find_source_files(root: Path, include_tests: bool = False) -> list[str]:
    """Relative POSIX paths of the ``.py`` files that belong in the corpus, sorted."""
    excluded_dirs = ALWAYS_EXCLUDED_DIRS if include_tests else ALWAYS_EXCLUDED_DIRS | TEST_DIRS
    found = []
    for folder, dir_names, file_names in os.walk(root):
        dir_names[:] = [name for name in dir_names if name not in excluded_dirs and not name.startswith("config-")]
        for name in file_names:
            if not name.endswith(".py") or name.startswith("_sysconfigdata"):
                continue
            relative = (Path(folder) / name).relative_to(root).as_posix()
            if relative != TOPICS_FILE:
                found.append(relative)
    return sorted(found)


def read_topics(root: Path) -> dict[str, str]:
    """``pydoc_data.topics.topics`` of the standard library under ``root``, without importing it."""
    path = root / TOPICS_FILE
    if not path.is_file():
        return {}
    module = ast.parse(path.read_bytes(), filename=str(path))
    for statement in module.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "topics" for target in statement.targets
        ):
            topics = ast.literal_eval(statement.value)
            if isinstance(topics, dict):
                return {str(key): str(value) for key, value in topics.items()}
    raise InputError(f"{path} has no 'topics = {{...}}' dictionary; is {root} a Python standard library folder?")


def collect_documents(root: Path, options: CorpusOptions) -> CollectedDocuments:
    """Read, filter and de-duplicate the corpus documents under ``root``, in sorted path order."""
    candidates: list[tuple[str, bytes | None]] = [
        (relative, None) for relative in find_source_files(root, options.include_tests)
    ]
    if options.include_topics:
        topics = read_topics(root)
        candidates += [(f"{TOPICS_FILE}#{key}", text.encode("utf-8")) for key, text in topics.items()]
    candidates.sort(key=lambda item: item[0])

    collected = CollectedDocuments()
    kept_by_hash: dict[str, str] = {}
    marker = END_OF_TEXT.encode("utf-8")
    for relative, data in candidates:
        if data is None:
            data = (root / relative).read_bytes()
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                collected.not_utf8.append(relative)
                continue
        if not data.strip():
            collected.empty.append(relative)
            continue
        if marker in data:
            # The marker inside a document would read as a document boundary once tokenized.
            collected.contains_end_of_text.append(relative)
            continue
        document = Document(relative, data)
        if document.sha256 in kept_by_hash:
            collected.duplicates[relative] = kept_by_hash[document.sha256]
            continue
        kept_by_hash[document.sha256] = relative
        collected.documents.append(document)
    return collected


def split_of(path: str, validation_fraction: float) -> Split:
    """The split of a document, from a hash of its relative path (stable when other files change)."""
    digest = hashlib.sha256(f"circuitlab-split:{path}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if position < validation_fraction else "train"


def assemble_splits(collected: CollectedDocuments, options: CorpusOptions) -> dict[Split, list[Document]]:
    splits: dict[Split, list[Document]] = {name: [] for name in SPLITS}
    for document in collected.documents:
        splits[split_of(document.path, options.validation_fraction)].append(document)
    return splits


def split_bytes(documents: list[Document]) -> bytes:
    """The split's text: each document followed by the end-of-text marker."""
    marker = END_OF_TEXT.encode("utf-8")
    return b"".join(document.data + marker for document in documents)


@dataclass(frozen=True)
class Corpus:
    """A built corpus: one UTF-8 text file per split and ``manifest.json``, in ``folder``."""

    folder: Path
    manifest: dict[str, Any]

    def path(self, split: Split) -> Path:
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        return self.folder / f"{split}.txt"

    def read_text(self, split: Split) -> str:
        return self.path(split).read_text(encoding="utf-8")

    def documents(self, split: Split) -> Iterator[str]:
        """The documents of a split, without their end-of-text markers."""
        pieces = self.read_text(split).split(END_OF_TEXT)
        yield from pieces[:-1]  # the text ends with a marker, so the last piece is empty

    @property
    def sha256(self) -> dict[str, str]:
        return {split: self.manifest["splits"][split]["sha256"] for split in SPLITS}


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def build_corpus(
    root: Path | str | None = None,
    cache_dir: Path | str | None = None,
    options: CorpusOptions | None = None,
    force: bool = False,
) -> Corpus:
    """Build the corpus into the cache (or reuse a complete, intact build) and return it.

    ``root`` defaults to this interpreter's standard library, ``cache_dir`` to ``default_cache_dir()``.
    The build lands in ``<cache_dir>/corpus/stdlib-py<X.Y>-<key>/`` where the key covers the root, the
    Python release and the options, so different inputs never share a folder.
    """
    root = Path(root) if root is not None else stdlib_root()
    options = options or CorpusOptions()
    if not root.is_dir():
        raise InputError(f"corpus root {root} is not a folder; pass a standard library folder (see stdlib_root())")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = {
        "format": CORPUS_FORMAT_VERSION,
        "root": str(root.resolve()),
        "python": sys.version.split()[0],
        **asdict(options),
    }
    folder = cache_dir / "corpus" / f"stdlib-py{python_version()}-{short_hash(key)}"
    if not force:
        cached = _load_if_intact(folder)
        if cached is not None:
            return cached

    collected = collect_documents(root, options)
    if not collected.documents:
        raise InputError(f"found no Python sources or documentation topics under {root}")
    splits = assemble_splits(collected, options)
    split_summaries = {}
    for split, documents in splits.items():
        data = split_bytes(documents)
        write_bytes_atomic(folder / f"{split}.txt", data)
        split_summaries[split] = {
            "documents": len(documents),
            "source_files": sum("#" not in document.path for document in documents),
            "topics": sum("#" in document.path for document in documents),
            "bytes": len(data),
            "document_bytes": sum(len(document.data) for document in documents),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    manifest = {
        "format_version": CORPUS_FORMAT_VERSION,
        "python_version": python_version(),
        "python_release": sys.version.split()[0],
        "root": str(root),
        "options": asdict(options),
        "end_of_text": END_OF_TEXT,
        "skipped": {
            "not_utf8": collected.not_utf8,
            "empty": len(collected.empty),
            "contains_end_of_text": collected.contains_end_of_text,
            "duplicates": collected.duplicates,
        },
        "splits": split_summaries,
        "documents": [
            {
                "path": d.path,
                "split": split_of(d.path, options.validation_fraction),
                "bytes": len(d.data),
                "sha256": d.sha256,
            }
            for d in collected.documents
        ],
    }
    # The manifest is written last: its presence says the split files beside it are complete.
    write_json_atomic(folder / "manifest.json", manifest)
    return Corpus(folder, manifest)


def _load_if_intact(folder: Path) -> Corpus | None:
    manifest = read_json(folder / "manifest.json")
    if manifest is None or manifest.get("format_version") != CORPUS_FORMAT_VERSION:
        return None
    corpus = Corpus(folder, manifest)
    for split in SPLITS:
        path = corpus.path(split)
        if not path.is_file() or sha256_file(path) != manifest["splits"][split]["sha256"]:
            return None
    return corpus
