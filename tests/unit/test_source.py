"""Image sources: the folder walk (lazy, sorted per directory, filtered), fetching with errors per image."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from imgsieve.config import DEFAULT_INCLUDE
from imgsieve.errors import UserError
from imgsieve.stream.source import FolderSource, SourceRef, fetch_all, matches, open_source


def touch(root: Path, *names: str) -> None:
    """Create files (and their folders) under root, each holding its own name."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())


def listed(source: FolderSource) -> list[str]:
    """Every listed path relative to the source's root."""
    return [str(Path(ref.uri).relative_to(source.root)) for page in source.pages() for ref in page]


def test_folder_is_walked_in_name_order_per_directory(tmp_path: Path) -> None:
    """Entries of each folder in name order, subfolders walked where they sort."""
    touch(tmp_path, "b.jpg", "a.png", "sub/z.gif", "sub/deeper/y.bmp", "c.jpeg", "A/x.jpg")
    assert listed(FolderSource(tmp_path, DEFAULT_INCLUDE)) == [
        "A/x.jpg",
        "a.png",
        "b.jpg",
        "c.jpeg",
        "sub/deeper/y.bmp",
        "sub/z.gif",
    ]


def test_default_globs_take_image_extensions_in_any_case(tmp_path: Path) -> None:
    """*.JPG matches *.jpg; notes, truth files, hidden files and hidden folders are left out."""
    touch(tmp_path, "a.JPG", "b.Png", "notes.txt", "_truth.csv", ".hidden.jpg", ".cache/c.jpg", "d.webp")
    assert listed(FolderSource(tmp_path, DEFAULT_INCLUDE)) == ["a.JPG", "b.Png"]


def test_include_globs_replace_the_defaults(tmp_path: Path) -> None:
    """--include decides alone which names are taken."""
    touch(tmp_path, "a.jpg", "b.webp", "scan-1.tif")
    assert listed(FolderSource(tmp_path, ["*.webp", "scan-*"])) == ["b.webp", "scan-1.tif"]
    assert matches("IMG_0001.JPEG", ["*.jpeg"])
    assert not matches("jpeg", ["*.jpeg"])


def test_listing_is_lazy_and_paged(tmp_path: Path) -> None:
    """Pages hold at most page_size refs, and the first page comes before the walk has seen everything."""
    touch(tmp_path, *(f"{d}/{i:02d}.jpg" for d in "abc" for i in range(5)))
    source = FolderSource(tmp_path, DEFAULT_INCLUDE, page_size=4)
    pages = source.pages()
    first = next(pages)
    assert len(first) == 4
    (tmp_path / "c" / "late.jpg").write_bytes(b"x")  # appears after listing started: still walked
    rest = list(itertools.chain.from_iterable(pages))
    assert len(first) + len(rest) == 16
    assert {len(p) for p in source.pages()} <= {4, 0}


def test_refs_carry_absolute_paths_and_sizes(tmp_path: Path) -> None:
    """The URI of a file is its absolute path (what its row is keyed by), with its size."""
    touch(tmp_path, "x.jpg")
    (ref,) = next(FolderSource(tmp_path / ".." / tmp_path.name, DEFAULT_INCLUDE).pages())
    assert ref == SourceRef(str(tmp_path.resolve() / "x.jpg"), len(b"x.jpg"))


def test_fetch_keeps_order_and_reports_each_failure(tmp_path: Path) -> None:
    """Bytes in listing order; a vanished or oversized file is that image's error, the rest go on."""
    touch(tmp_path, *(f"{i:02d}.jpg" for i in range(12)))
    (tmp_path / "big.jpg").write_bytes(b"y" * 100)
    source = FolderSource(tmp_path, DEFAULT_INCLUDE)
    refs = [ref for page in source.pages() for ref in page]
    (tmp_path / "03.jpg").unlink()
    fetched = list(fetch_all(source, refs, concurrency=3, max_bytes=50))
    assert [f.uri for f in fetched] == [r.uri for r in refs]
    by_name = {Path(f.uri).name: f for f in fetched}
    assert by_name["00.jpg"].data == b"00.jpg"
    assert by_name["03.jpg"].data is None
    assert by_name["03.jpg"].error == "cannot read file: No such file or directory"
    assert by_name["big.jpg"].error == "image is 100 bytes, over the 50-byte limit"


def test_a_file_that_grew_after_listing_is_still_capped(tmp_path: Path) -> None:
    """The read itself stops past max_bytes, whatever the listing said."""
    touch(tmp_path, "a.jpg")
    source = FolderSource(tmp_path, DEFAULT_INCLUDE)
    refs = next(source.pages())
    (tmp_path / "a.jpg").write_bytes(b"z" * 1000)
    (fetched,) = fetch_all(source, refs, concurrency=1, max_bytes=50)
    assert fetched.error == "image is over the 50-byte limit; raise max_bytes to accept it"


def test_open_source_tells_a_folder_from_an_s3_url(tmp_path: Path) -> None:
    """A path opens a folder source; a missing folder is a readable UserError."""
    assert isinstance(open_source(str(tmp_path), DEFAULT_INCLUDE), FolderSource)
    with pytest.raises(UserError, match="not a folder"):
        open_source(str(tmp_path / "missing"), DEFAULT_INCLUDE)
    with pytest.raises(UserError, match="expected s3://BUCKET/PREFIX/"):
        open_source("s3://", DEFAULT_INCLUDE)
