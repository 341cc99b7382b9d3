"""Bundle paths: only safe relative POSIX paths in NFC, checked alike at build and at the node."""

from __future__ import annotations

import os
import unicodedata

import pytest

from flame_lab import errors
from flame_lab.security.bundle import (
    Limits,
    build,
    check_path,
    normalise_files,
    read_directory,
)
from tests.security.test_bundle import ALICE, NOW, check, entry, make, raises_exactly, resign

CAFE_NFC = unicodedata.normalize("NFC", "café.py")
CAFE_NFD = unicodedata.normalize("NFD", "café.py")

UNSAFE_PATHS = {  # name: (path, what the error says)
    "absolute": ("/etc/evil.py", "absolute"),
    "parent segment": ("../evil.py", "'..' segment"),
    "inner parent segment": ("lib/../../evil.py", "'..' segment"),
    "dot segment": ("./evil.py", "'.' segment"),
    "empty segment": ("lib//evil.py", "empty segment"),
    "trailing slash": ("lib/", "empty segment"),
    "empty": ("", "empty"),
    "backslash": ("lib\\evil.py", "backslash"),
    "nul": ("evil\x00.py", "U+0000"),
    "newline": ("evil\n.py", "U+000A"),
    "escape": ("evil\x1b[2J.py", "U+001B"),
    "bidi override": ("evil\u202eyp.txt", "U+202E"),
    "drive letter": ("C:/evil.py", "drive letters"),
    "drive relative": ("c:evil.py", "drive letters"),
    "reserved folder": (".flame-lab/manifest.json", "reserved"),
    "reserved folder in capitals": (".FLAME-LAB/evil.py", "reserved"),
    "overlong segment": ("e" * 256 + ".py", "longer than 255 bytes"),
    "overlong path": ("/".join(["d" * 200] * 6) + ".py", "longer than 1024 bytes"),
}


def refused_at_build(path: str) -> str:
    return raises_exactly(errors.UnsafePath, lambda: make({"main.py": b"", path: b"x"})).message


def refused_at_node(path: str) -> str:
    def add(doc):
        doc["files"] = sorted([*doc["files"], entry(path, b"x")], key=lambda e: e["path"])

    bundle = make({"main.py": b""})
    forged = resign(bundle, add, files={**bundle.files, path: b"x"})
    return raises_exactly(errors.UnsafePath, lambda: check(forged)).message


@pytest.mark.parametrize(("path", "reason"), UNSAFE_PATHS.values(), ids=UNSAFE_PATHS.keys())
def test_an_unsafe_path_is_refused_at_build(path, reason):
    assert reason in refused_at_build(path)


@pytest.mark.parametrize(("path", "reason"), UNSAFE_PATHS.values(), ids=UNSAFE_PATHS.keys())
def test_an_unsafe_path_signed_into_a_manifest_is_refused_at_the_node_for_the_same_reason(
    path, reason
):
    assert refused_at_node(path) == refused_at_build(path)
    assert reason in refused_at_node(path)


def test_the_error_shows_control_characters_escaped():
    err = raises_exactly(errors.UnsafePath, lambda: check_path("evil\x1b[2J.py"))
    assert "\x1b" not in err.message and "U+001B" in err.message


def test_safe_paths_pass_unchanged():
    for path in ("main.py", "lib/util.py", "a/b/c/d.py", ".hidden.py", "café.py", "数据/分析.py"):
        assert check_path(unicodedata.normalize("NFC", path)) == unicodedata.normalize("NFC", path)


def test_paths_differing_only_in_case_are_refused_at_build():
    err = raises_exactly(
        errors.UnsafePath, lambda: make({"main.py": b"", "A.py": b"", "a.py": b""})
    )
    assert "case" in err.message


def test_paths_differing_only_in_case_are_refused_at_the_node():
    def add(doc):
        extra = [entry("A.py", b"1"), entry("a.py", b"2")]
        doc["files"] = sorted([*doc["files"], *extra], key=lambda e: e["path"])

    bundle = make({"main.py": b""})
    forged = resign(bundle, add, files={**bundle.files, "A.py": b"1", "a.py": b"2"})
    raises_exactly(errors.UnsafePath, lambda: check(forged))


def test_the_same_name_in_two_unicode_normal_forms_is_refused_at_build():
    assert CAFE_NFC != CAFE_NFD
    err = raises_exactly(
        errors.UnsafePath, lambda: make({"main.py": b"", CAFE_NFC: b"1", CAFE_NFD: b"2"})
    )
    assert "normal form" in err.message


def test_build_normalises_paths_and_entrypoint_to_nfc():
    bundle = make({CAFE_NFD: b"print(1)\n"}, CAFE_NFD)
    assert list(bundle.files) == [CAFE_NFC]
    manifest = check(bundle)
    assert manifest.entrypoint == CAFE_NFC
    assert [f.path for f in manifest.files] == [CAFE_NFC]


def test_a_non_nfc_path_in_the_manifest_is_refused_at_the_node():
    def to_nfd(doc):
        doc["files"][0]["path"] = CAFE_NFD
        doc["entrypoint"] = CAFE_NFD

    bundle = make({CAFE_NFC: b"print(1)\n"}, CAFE_NFC)
    forged = resign(bundle, to_nfd, files={CAFE_NFD: b"print(1)\n"})
    err = raises_exactly(errors.UnsafePath, lambda: check(forged))
    assert "NFC" in err.message


def test_a_file_arriving_under_its_nfd_name_is_refused_at_the_node():
    bundle = make({CAFE_NFC: b"print(1)\n"}, CAFE_NFC)
    arrived = type(bundle)(bundle.manifest_bytes, bundle.signature, {CAFE_NFD: b"print(1)\n"})
    raises_exactly(errors.TamperedBundle, lambda: check(arrived))


def test_a_path_that_is_both_a_file_and_a_folder_is_refused():
    err = raises_exactly(
        errors.UnsafePath, lambda: make({"main.py": b"", "lib": b"", "lib/x.py": b""})
    )
    assert "file and a folder" in err.message
    raises_exactly(errors.UnsafePath, lambda: make({"main.py": b"", "LIB": b"", "lib/x.py": b""}))


def test_file_contents_must_be_bytes():
    raises_exactly(errors.BundleError, lambda: normalise_files({"main.py": "print(1)"}))


# -- reading a folder ----------------------------------------------------------------------
def test_read_directory_gives_relative_posix_paths_of_all_files(tmp_path):
    (tmp_path / "lib" / "deep").mkdir(parents=True)
    (tmp_path / "main.py").write_bytes(b"print(1)\n")
    (tmp_path / "lib" / "deep" / "util.py").write_bytes(b"X = 1\n")
    (tmp_path / "empty").mkdir()
    files = read_directory(tmp_path)
    assert files == {"lib/deep/util.py": b"X = 1\n", "main.py": b"print(1)\n"}
    assert check(build(files, "main.py", ALICE, now=NOW)).entrypoint == "main.py"


def test_read_directory_refuses_a_symlinked_file(tmp_path):
    (tmp_path / "main.py").write_bytes(b"print(1)\n")
    (tmp_path / "also_main.py").symlink_to("main.py")
    err = raises_exactly(errors.UnsafePath, lambda: read_directory(tmp_path))
    assert "symbolic link" in err.message


def test_read_directory_refuses_a_symlinked_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "main.py").write_bytes(b"print(1)\n")
    (tmp_path / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    raises_exactly(errors.UnsafePath, lambda: read_directory(tmp_path))


def test_read_directory_refuses_special_files(tmp_path):
    (tmp_path / "main.py").write_bytes(b"print(1)\n")
    os.mkfifo(tmp_path / "pipe")
    err = raises_exactly(errors.UnsafePath, lambda: read_directory(tmp_path))
    assert "regular file" in err.message


def test_read_directory_normalises_names_to_nfc(tmp_path):
    (tmp_path / CAFE_NFD).write_bytes(b"print(1)\n")
    assert read_directory(tmp_path) == {CAFE_NFC: b"print(1)\n"}


def test_read_directory_refuses_names_in_two_normal_forms(tmp_path):
    (tmp_path / CAFE_NFD).write_bytes(b"1")
    (tmp_path / CAFE_NFC).write_bytes(b"2")
    raises_exactly(errors.UnsafePath, lambda: read_directory(tmp_path))


def test_read_directory_stops_at_the_size_limit(tmp_path):
    (tmp_path / "a.py").write_bytes(b"x" * 600)
    (tmp_path / "b.py").write_bytes(b"x" * 600)
    err = raises_exactly(
        errors.BundleTooLarge, lambda: read_directory(tmp_path, limits=Limits(max_total_bytes=1000))
    )
    assert "1200 bytes" in err.message and "1000 bytes" in err.message


def test_read_directory_stops_at_the_file_count_limit(tmp_path):
    for i in range(4):
        (tmp_path / f"m{i}.py").write_bytes(b"")
    raises_exactly(
        errors.BundleTooLarge, lambda: read_directory(tmp_path, limits=Limits(max_files=3))
    )


def test_read_directory_refuses_what_is_not_a_folder(tmp_path):
    (tmp_path / "main.py").write_bytes(b"")
    raises_exactly(errors.BundleError, lambda: read_directory(tmp_path / "main.py"))
    raises_exactly(errors.BundleError, lambda: read_directory(tmp_path / "missing"))
