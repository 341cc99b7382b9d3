"""Signed bundles: a node runs exactly the code a researcher it trusts signed, or nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature

from flame_lab import errors
from flame_lab.security import bundle as bundle_mod
from flame_lab.security.bundle import (
    MANIFEST_NAME,
    SIGNATURE_DOMAIN,
    SIGNATURE_NAME,
    FileEntry,
    Limits,
    SignedBundle,
    build,
    verify,
)
from flame_lab.security.canonical import canonical_json
from flame_lab.security.keys import Identity

NOW = 1_800_000_000
ALICE = Identity.generate()
SECRET_MARK = b"PATIENT-SECRET-7f3a"


def code_files() -> dict[str, bytes]:
    return {
        "main.py": b"from lib.util import X\nprint(X, '" + SECRET_MARK + b"')\n",
        "lib/util.py": b"X = 1  # " + SECRET_MARK + b"\n",
        "notes.txt": b"some notes " + SECRET_MARK + b"\n",
    }


def make(files: dict[str, bytes] | None = None, entrypoint: str = "main.py", **kw) -> SignedBundle:
    return build(code_files() if files is None else files, entrypoint, ALICE, now=NOW, **kw)


def encode(doc: dict[str, Any]) -> bytes:
    """Canonical byte layout without canonical_json's own checks (to forge odd manifests)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def resign(
    bundle: SignedBundle,
    edit: Callable[[dict[str, Any]], None],
    *,
    files: dict[str, bytes] | None = None,
    signer: Identity = ALICE,
    raw: Callable[[dict[str, Any]], bytes] = encode,
) -> SignedBundle:
    """Edit the manifest and sign it properly, so only the edited rule can refuse it."""
    doc = json.loads(bundle.manifest_bytes)
    edit(doc)
    data = raw(doc)
    signature = signer.signing_key.sign(SIGNATURE_DOMAIN + data)
    return SignedBundle(data, signature, dict(bundle.files) if files is None else files)


def entry(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def raises_exactly(cls: type[Exception], fn: Callable[[], object]) -> Exception:
    """The refusal is this very class, not a parent or a sibling that happens to match."""
    with pytest.raises(errors.FlameLabError) as info:
        fn()
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    return info.value


def check(bundle: SignedBundle, **kw):
    return verify(bundle, [ALICE.public], now=kw.pop("now", NOW), **kw)


# -- the happy path ------------------------------------------------------------------------
def test_a_bundle_signed_by_a_trusted_researcher_verifies_and_returns_its_manifest():
    manifest = check(make())
    assert manifest.version == 1
    assert manifest.entrypoint == "main.py"
    assert manifest.signer == ALICE.key_id
    assert manifest.recipients == (ALICE.public,)
    assert (manifest.created_at, manifest.expires_at) == (NOW, NOW + 7 * 24 * 3600)
    data = code_files()["main.py"]
    assert FileEntry("main.py", len(data), hashlib.sha256(data).hexdigest()) in manifest.files
    assert [f.path for f in manifest.files] == ["lib/util.py", "main.py", "notes.txt"]


def test_the_manifest_is_canonical_json_with_camelcase_fields():
    bundle = make()
    doc = json.loads(bundle.manifest_bytes)
    assert canonical_json(doc) == bundle.manifest_bytes
    assert set(doc) == {
        "version", "files", "entrypoint", "recipients", "runNonce", "createdAt", "expiresAt",
        "signer",
    }  # fmt: skip
    assert doc["recipients"] == [ALICE.public.to_dict()]


def test_round_trip_through_bucket_files_keeps_bytes_and_verifies():
    bundle = make()
    bucket = bundle.to_bucket_files()
    assert set(bucket) == set(code_files()) | {MANIFEST_NAME, SIGNATURE_NAME}
    back = SignedBundle.from_bucket_files(bucket)
    assert back.manifest_bytes == bundle.manifest_bytes
    assert back.signature == bundle.signature
    assert dict(back.files) == code_files()
    assert back.bundle_hash == bundle.bundle_hash
    assert check(back) == check(bundle)


def test_bucket_files_without_a_manifest_or_signature_are_refused():
    bucket = make().to_bucket_files()
    for name in (MANIFEST_NAME, SIGNATURE_NAME):
        partial = {k: v for k, v in bucket.items() if k != name}
        err = raises_exactly(
            errors.MalformedManifest, lambda p=partial: SignedBundle.from_bucket_files(p)
        )
        assert name in err.message


def test_explicit_recipients_are_pinned_in_the_manifest():
    bob = Identity.generate()
    manifest = check(make(recipients=[ALICE.public, bob.public]))
    assert manifest.recipients == (ALICE.public, bob.public)


def test_empty_or_repeated_recipients_are_refused_at_build():
    for recipients in ([], [ALICE.public, ALICE.public]):
        raises_exactly(errors.BundleError, lambda r=recipients: make(recipients=r))


# -- hashes and nonces ---------------------------------------------------------------------
def test_bundle_hash_is_the_sha256_of_the_manifest_bytes():
    bundle = make()
    assert bundle.bundle_hash == hashlib.sha256(bundle.manifest_bytes).hexdigest()


def test_bundle_hash_is_stable_for_the_same_input_and_changes_with_any_file(monkeypatch):
    monkeypatch.setattr(bundle_mod.secrets, "token_bytes", lambda n: b"\x07" * n)
    first, second = make(), make()
    assert first.bundle_hash == second.bundle_hash
    hashes = {first.bundle_hash}
    for path in code_files():
        files = code_files()
        files[path] += b"#"
        hashes.add(make(files).bundle_hash)
    assert len(hashes) == 1 + len(code_files())


def test_each_build_gets_a_fresh_32_byte_run_nonce():
    first, second = make().manifest, make().manifest
    assert first.run_nonce != second.run_nonce
    assert len(bundle_mod.unb64(first.run_nonce)) == 32


def test_the_signature_is_ed25519_over_the_domain_prefix_and_the_manifest_bytes():
    bundle = make()
    key = ALICE.public.signing_key
    key.verify(bundle.signature, SIGNATURE_DOMAIN + bundle.manifest_bytes)
    with pytest.raises(InvalidSignature):
        key.verify(bundle.signature, bundle.manifest_bytes)


# -- files received differ from files signed -----------------------------------------------
def received(bundle: SignedBundle, files: dict[str, bytes]) -> SignedBundle:
    """The signed manifest and signature, arriving with other files."""
    return SignedBundle(bundle.manifest_bytes, bundle.signature, files)


def test_a_changed_file_is_refused():
    bundle = make()
    files = {**bundle.files, "lib/util.py": b"X = 2  # " + SECRET_MARK + b"\n"}
    err = raises_exactly(errors.TamperedBundle, lambda: check(received(bundle, files)))
    assert "lib/util.py" in err.message


def test_a_changed_file_is_refused_even_with_the_same_size():
    bundle = make()
    files = dict(bundle.files)
    files["main.py"] = files["main.py"].replace(b"X", b"Y")
    err = raises_exactly(errors.TamperedBundle, lambda: check(received(bundle, files)))
    assert "SHA-256" in err.message


def test_an_added_file_is_refused():
    bundle = make()
    files = {**bundle.files, "extra.py": b"import os\n"}
    err = raises_exactly(errors.TamperedBundle, lambda: check(received(bundle, files)))
    assert "extra.py" in err.message


def test_a_removed_file_is_refused():
    bundle = make()
    files = {k: v for k, v in bundle.files.items() if k != "notes.txt"}
    err = raises_exactly(errors.TamperedBundle, lambda: check(received(bundle, files)))
    assert "notes.txt" in err.message


def test_a_renamed_file_is_refused():
    bundle = make()
    files = dict(bundle.files)
    files["lib/utils.py"] = files.pop("lib/util.py")
    raises_exactly(errors.TamperedBundle, lambda: check(received(bundle, files)))


def test_bytes_moved_across_a_file_boundary_are_refused_by_size():
    bundle = make({"a.py": b"x = 1\n", "b.py": b"y = 2\n"}, "a.py")
    files = {"a.py": b"x = 1", "b.py": b"\ny = 2\n"}
    err = raises_exactly(errors.TamperedBundle, lambda: check(received(bundle, files)))
    assert "a.py" in err.message and "5 bytes" in err.message


# -- who signed ----------------------------------------------------------------------------
def test_a_signer_the_node_does_not_trust_is_refused():
    stranger = Identity.generate()
    err = raises_exactly(errors.UntrustedSigner, lambda: verify(make(), [stranger.public], now=NOW))
    assert ALICE.key_id in err.message


def test_no_trusted_keys_means_no_bundle_verifies():
    raises_exactly(errors.UntrustedSigner, lambda: verify(make(), [], now=NOW))


def test_a_key_shipped_inside_the_bundle_is_never_trusted():
    mallory = Identity.generate()
    forged = build(code_files(), "main.py", mallory, [mallory.public], now=NOW)
    assert forged.manifest.recipients == (mallory.public,)
    raises_exactly(errors.UntrustedSigner, lambda: check(forged))


def test_a_bundle_naming_a_trusted_signer_but_signed_by_another_key_is_refused():
    mallory = Identity.generate()
    forged = resign(make(), lambda doc: None, signer=mallory)
    assert forged.manifest.signer == ALICE.key_id
    raises_exactly(errors.BadBundleSignature, lambda: check(forged))


def test_a_bad_signature_is_refused():
    bundle = make()
    bad = bytes([bundle.signature[0] ^ 1]) + bundle.signature[1:]
    raises_exactly(
        errors.BadBundleSignature,
        lambda: check(SignedBundle(bundle.manifest_bytes, bad, bundle.files)),
    )


def test_a_truncated_signature_is_refused():
    bundle = make()
    raises_exactly(
        errors.BadBundleSignature,
        lambda: check(SignedBundle(bundle.manifest_bytes, bundle.signature[:-1], bundle.files)),
    )


# -- when ----------------------------------------------------------------------------------
def test_an_expired_bundle_is_refused():
    bundle = make(ttl_seconds=3600)
    assert check(bundle, now=NOW + 3600)
    err = raises_exactly(errors.BundleExpired, lambda: check(bundle, now=NOW + 3601))
    assert str(NOW + 3600) in err.message


def test_a_bundle_created_in_the_future_beyond_the_clock_skew_is_refused():
    bundle = make()
    assert check(bundle, now=NOW - bundle_mod.CLOCK_SKEW_SECONDS)
    raises_exactly(
        errors.BundleNotYetValid, lambda: check(bundle, now=NOW - bundle_mod.CLOCK_SKEW_SECONDS - 1)
    )


def test_a_non_positive_lifetime_is_refused_at_build():
    for ttl in (0, -5):
        raises_exactly(errors.BundleError, lambda t=ttl: make(ttl_seconds=t))


def test_a_manifest_expiring_before_it_was_created_is_refused():
    forged = resign(make(), lambda doc: doc.update(expiresAt=doc["createdAt"]))
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


# -- entrypoint ----------------------------------------------------------------------------
def test_an_entrypoint_that_is_not_among_the_files_is_refused_at_build():
    err = raises_exactly(errors.BadEntrypoint, lambda: make(entrypoint="run.py"))
    assert "run.py" in err.message


def test_an_entrypoint_that_is_not_a_python_file_is_refused_at_build():
    err = raises_exactly(errors.BadEntrypoint, lambda: make(entrypoint="notes.txt"))
    assert ".py" in err.message


def test_an_entrypoint_not_among_the_files_is_refused_at_the_node():
    forged = resign(make(), lambda doc: doc.update(entrypoint="run.py"))
    raises_exactly(errors.BadEntrypoint, lambda: check(forged))


def test_an_entrypoint_that_is_not_a_python_file_is_refused_at_the_node():
    forged = resign(make(), lambda doc: doc.update(entrypoint="notes.txt"))
    raises_exactly(errors.BadEntrypoint, lambda: check(forged))


# -- size limits ---------------------------------------------------------------------------
def test_too_many_files_are_refused_at_build_naming_the_limit_and_the_count():
    files = {f"m{i}.py": b"" for i in range(6)}
    err = raises_exactly(
        errors.BundleTooLarge, lambda: make(files, "m0.py", limits=Limits(max_files=5))
    )
    assert "6 files" in err.message and "limit is 5" in err.message


def test_too_many_bytes_are_refused_at_build_naming_the_limit_and_the_size():
    files = {"main.py": b"x" * 2000}
    err = raises_exactly(
        errors.BundleTooLarge, lambda: make(files, limits=Limits(max_total_bytes=1024))
    )
    assert "2000 bytes" in err.message and "1024 bytes" in err.message


def test_the_default_limits_are_50_mib_and_1000_files():
    assert Limits().max_total_bytes == 50 * 1024 * 1024
    assert Limits().max_files == 1000


def test_an_oversized_bundle_is_refused_at_the_node():
    bundle = make({"main.py": b"x" * 2000})
    err = raises_exactly(
        errors.BundleTooLarge, lambda: check(bundle, limits=Limits(max_total_bytes=1024))
    )
    assert "1024 bytes" in err.message
    raises_exactly(errors.BundleTooLarge, lambda: check(make(), limits=Limits(max_files=2)))


def test_a_manifest_declaring_oversized_files_is_refused_before_any_hashing():
    def grow(doc):
        doc["files"][0]["size"] = 60 * 1024 * 1024

    raises_exactly(errors.BundleTooLarge, lambda: check(resign(make(), grow)))


def test_an_oversized_manifest_is_refused_before_parsing():
    bundle = make()
    raises_exactly(
        errors.BundleTooLarge, lambda: check(bundle, limits=Limits(max_manifest_bytes=100))
    )


# -- the manifest itself -------------------------------------------------------------------
def test_a_manifest_that_is_not_canonical_is_refused():
    pretty = resign(make(), lambda doc: None, raw=lambda doc: json.dumps(doc, indent=1).encode())
    err = raises_exactly(errors.MalformedManifest, lambda: check(pretty))
    assert "canonical" in err.message


def encode_unsorted(doc: dict[str, Any]) -> bytes:
    backwards = dict(reversed(doc.items()))
    return json.dumps(backwards, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_manifest_with_unsorted_keys_is_refused():
    unsorted = resign(make(), lambda doc: None, raw=lambda doc: encode_unsorted(doc))
    raises_exactly(errors.MalformedManifest, lambda: check(unsorted))


def test_a_manifest_with_files_out_of_order_is_refused():
    forged = resign(make(), lambda doc: doc["files"].reverse())
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


def test_a_manifest_with_an_unknown_field_is_refused():
    forged = resign(make(), lambda doc: doc.update(comment="hi"))
    err = raises_exactly(errors.MalformedManifest, lambda: check(forged))
    assert "comment" in err.message


def test_a_file_entry_with_an_unknown_field_is_refused():
    forged = resign(make(), lambda doc: doc["files"][0].update(mode=493))
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


def test_a_manifest_with_a_missing_field_is_refused():
    forged = resign(make(), lambda doc: doc.pop("runNonce"))
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


def test_a_manifest_with_another_format_version_is_refused():
    forged = resign(make(), lambda doc: doc.update(version=2))
    err = raises_exactly(errors.UnsupportedBundleVersion, lambda: check(forged))
    assert "version 1" in err.message


def test_a_manifest_listing_a_path_twice_is_refused():
    def twice(doc):
        doc["files"].insert(0, dict(doc["files"][0]))

    err = raises_exactly(errors.DuplicatePath, lambda: check(resign(make(), twice)))
    assert "lib/util.py" in err.message


def test_a_manifest_naming_a_recipient_twice_is_refused():
    forged = resign(make(), lambda doc: doc["recipients"].append(doc["recipients"][0]))
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


def test_a_recipient_key_in_padded_base64_is_refused():
    forged = resign(
        make(), lambda doc: doc["recipients"][0].update(x25519=doc["recipients"][0]["x25519"] + "=")
    )
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


def test_a_manifest_repeating_a_json_key_is_refused():
    bundle = make()
    data = bundle.manifest_bytes[:-1] + b',"version":1}'
    forged = resign(bundle, lambda doc: None, raw=lambda doc: data)
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


def test_a_manifest_with_floats_is_refused():
    def floaty(doc):
        doc["files"][0]["size"] = float(doc["files"][0]["size"])

    raises_exactly(errors.MalformedManifest, lambda: check(resign(make(), floaty)))


def test_a_manifest_that_is_not_utf8_json_is_refused():
    bundle = make()
    for data in (b"\xff\xfe", bundle.manifest_bytes.decode().encode("utf-16"), b"[]"):
        forged = resign(bundle, lambda doc: None, raw=lambda doc, d=data: d)
        raises_exactly(errors.MalformedManifest, lambda f=forged: check(f))


def test_a_run_nonce_of_the_wrong_length_is_refused():
    forged = resign(make(), lambda doc: doc.update(runNonce=bundle_mod.b64(b"\x00" * 16)))
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


def test_a_recipient_whose_key_id_does_not_match_its_keys_is_refused():
    other = Identity.generate().key_id
    forged = resign(make(), lambda doc: doc["recipients"][0].update(keyId=other))
    raises_exactly(errors.MalformedManifest, lambda: check(forged))


# -- what errors and reprs show ------------------------------------------------------------
def test_exception_texts_never_contain_file_contents():
    bundle = make()
    changed = {**bundle.files, "main.py": SECRET_MARK + b" changed"}
    moved = {**bundle.files, "notes.txt": bundle.files["notes.txt"] + SECRET_MARK}
    attempts = [
        lambda: check(SignedBundle(bundle.manifest_bytes, bundle.signature, changed)),
        lambda: check(SignedBundle(bundle.manifest_bytes, bundle.signature, moved)),
        lambda: make({"main.py": SECRET_MARK * 100}, limits=Limits(max_total_bytes=10)),
        lambda: make({"main.py": SECRET_MARK.decode()}),  # type: ignore[dict-item]
    ]
    for attempt in attempts:
        with pytest.raises(errors.BundleError) as info:
            attempt()
        text = str(info.value) + repr(info.value) + json.dumps(info.value.to_dict())
        assert SECRET_MARK.decode() not in text


def test_the_repr_of_a_bundle_shows_its_hash_not_its_contents():
    bundle = make()
    assert bundle.bundle_hash in repr(bundle)
    assert SECRET_MARK.decode() not in repr(bundle)


def test_a_bundle_is_immutable_once_built():
    bundle = make()
    with pytest.raises(TypeError):
        bundle.files["main.py"] = b"evil"  # type: ignore[index]
