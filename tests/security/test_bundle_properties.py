"""Properties: no single-byte change or rename slips past `verify`; build and verify agree."""

from __future__ import annotations

import unicodedata

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flame_lab import errors
from flame_lab.security.bundle import SignedBundle, check_path
from tests.security.test_bundle import check, make

BUNDLE = make(
    {
        "main.py": b"from lib import util\nprint(util.X)\n",
        "lib/__init__.py": b"#\n",
        "lib/util.py": b"X = 41 + 1\n",
        "README.md": b"# analysis\n",
    }
)
PARTS = ("manifest", "signature", *sorted(BUNDLE.files))


def flipped(data: bytes, index: int, mask: int) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def test_the_untouched_property_bundle_verifies():
    assert check(BUNDLE).entrypoint == "main.py"


@settings(max_examples=250)
@given(part=st.sampled_from(PARTS), data=st.data(), mask=st.integers(1, 255))
def test_any_single_byte_flip_in_a_file_the_manifest_or_the_signature_is_rejected(part, data, mask):
    manifest, signature, files = BUNDLE.manifest_bytes, BUNDLE.signature, dict(BUNDLE.files)
    target = {"manifest": manifest, "signature": signature}.get(part, files.get(part, b""))
    index = data.draw(st.integers(0, len(target) - 1), label="index")
    changed = flipped(target, index, mask)
    if part == "manifest":
        manifest = changed
    elif part == "signature":
        signature = changed
    else:
        files[part] = changed
    try:
        check(SignedBundle(manifest, signature, files))
    except errors.BundleError:
        return
    raise AssertionError(f"a flip of byte {index} in {part} was accepted")


@settings(max_examples=100)
@given(old=st.sampled_from(sorted(BUNDLE.files)), new=st.text(min_size=1, max_size=40))
def test_renaming_any_one_file_is_rejected(old, new):
    if new == old:
        new += "x"
    files = dict(BUNDLE.files)
    files[new] = files.pop(old)
    try:
        check(SignedBundle(BUNDLE.manifest_bytes, BUNDLE.signature, files))
    except errors.TamperedBundle:
        return
    raise AssertionError(f"renaming {old!r} to {new!r} was accepted")


@settings(max_examples=200)
@given(path=st.text(st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["a/b.py", "./x", "a/../b", "C:x", "x\\y", ".flame-lab/x", "e\u0301.py", "A/a.py"]
))  # fmt: skip
def test_build_accepts_exactly_the_paths_whose_nfc_form_is_safe_and_verify_agrees(path):
    normal = unicodedata.normalize("NFC", path)
    folded = unicodedata.normalize("NFC", normal.casefold())
    assume(not folded.startswith("main.py"))  # collisions with main.py have their own tests
    try:
        safe = check_path(normal) == normal
    except errors.UnsafePath:
        safe = False
    try:
        bundle = make({"main.py": b"", path: b"x"})
    except errors.UnsafePath:
        assert not safe, f"build refused the safe path {path!r}"
        return
    assert safe, f"build accepted the unsafe path {path!r}"
    assert normal in bundle.files
    assert check(bundle).entrypoint == "main.py"
