"""How fast and how lean sealing and opening results are, next to raw AES-256-GCM.

For 1 MiB, 100 MiB and 1 GiB payloads (``--quick``: the first two) it prints the throughput
of seal and open (verify + unwrap + decrypt) as a ratio of one raw AES-256-GCM encrypt /
decrypt call over the same buffer in the same run (goal: open >= 0.5 at 100 MiB), and the
memory each operation adds, measured as the growth of the peak resident set (VmHWM) in a
fresh subprocess per size, relative to the payload (goal: < 2x). A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flame_lab.security.envelope import Expected, open_file, open_sealed, seal
from flame_lab.security.keys import Identity, NodeIdentity, NodePublicIdentity

MIB = 1 << 20
SIZES = {"1 MiB": MIB, "100 MiB": 100 * MIB, "1 GiB": 1024 * MIB}
QUICK = ("1 MiB", "100 MiB")


def _peak_rss() -> int:
    """Peak resident set of this process in bytes.

    Linux: VmHWM, which (unlike ru_maxrss) does not inherit the parent's peak across fork and
    exec; elsewhere ru_maxrss (KiB on Linux, bytes on macOS: only Linux is calibrated here).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _seal_args(alice: Identity, node: NodeIdentity) -> dict:
    return dict(
        analysis_id="bench",
        node_id="aggregator",
        bundle_hash="0" * 64,
        run_nonce="bench",
        sequence=0,
        content_type="application/octet-stream",
        recipients=[alice.public],
        node=node,
    )


def _open_args(alice: Identity, node: NodeIdentity) -> dict:
    expected = Expected("bench", "0" * 64, "bench", frozenset({alice.key_id}))
    return dict(
        identity=alice,
        trusted_nodes={"aggregator": node.public},
        expected=expected,
        guard=None,
    )


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timings(size: int, repeat: int) -> dict[str, float]:
    """Median seconds and median ratios over ``repeat`` rounds; each round times the raw
    AES-GCM call right before the flame_lab call, so that load from other processes on a
    shared machine hits both sides of a ratio alike."""
    alice, node = Identity.generate(), NodeIdentity.generate()
    payload = os.urandom(size)
    aead, nonce = AESGCM(AESGCM.generate_key(bit_length=256)), os.urandom(12)
    ciphertext = aead.encrypt(nonce, payload, None)
    blob = seal(payload, **_seal_args(alice, node))
    rounds: dict[str, list[float]] = {k: [] for k in ("raw_encrypt", "seal", "raw_decrypt", "open")}
    for _ in range(repeat):
        rounds["raw_encrypt"].append(_seconds(lambda: aead.encrypt(nonce, payload, None)))
        rounds["seal"].append(_seconds(lambda: seal(payload, **_seal_args(alice, node))))
        rounds["raw_decrypt"].append(_seconds(lambda: aead.decrypt(nonce, ciphertext, None)))
        rounds["open"].append(_seconds(lambda: open_sealed(blob, **_open_args(alice, node))))
    out = {k: statistics.median(v) for k, v in rounds.items()}
    pairs = (("seal_ratio", "raw_encrypt", "seal"), ("open_ratio", "raw_decrypt", "open"))
    for name, raw, ours in pairs:
        out[name] = statistics.median(r / o for r, o in zip(rounds[raw], rounds[ours], strict=True))
    return out


# -- memory, in fresh children per size -------------------------------------------------------
_RAW = (serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def _prepare(size: int, workdir: Path) -> None:
    """Child 1: seal a random payload to a file, leaving the keys beside it (bench only)."""
    alice, node = Identity.generate(), NodeIdentity.generate()
    (workdir / "blob.flrs").write_bytes(seal(os.urandom(size), **_seal_args(alice, node)))
    keys = {
        "x25519": alice.encryption_key.private_bytes(*_RAW).hex(),
        "ed25519": alice.signing_key.private_bytes(*_RAW).hex(),
        "node": node.public.to_dict(),
    }
    path = workdir / "keys.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps(keys))


def _load(workdir: Path) -> dict:
    keys = json.loads((workdir / "keys.json").read_text())
    alice = Identity(
        X25519PrivateKey.from_private_bytes(bytes.fromhex(keys["x25519"])),
        Ed25519PrivateKey.from_private_bytes(bytes.fromhex(keys["ed25519"])),
    )
    node = NodePublicIdentity.from_dict(keys["node"])
    expected = Expected("bench", "0" * 64, "bench", frozenset({alice.key_id}))
    return dict(identity=alice, trusted_nodes={"aggregator": node}, expected=expected, guard=None)


def _child(mode: str, size: int, workdir: Path) -> None:
    """Child 2: one operation on its own, printing the process peak before and after it."""
    if mode == "prepare":
        _prepare(size, workdir)
        return
    if mode == "seal":
        alice, node = Identity.generate(), NodeIdentity.generate()
        payload = os.urandom(size)
        before = _peak_rss()
        blob = seal(payload, **_seal_args(alice, node))
        after = _peak_rss()
        assert len(blob) > size
    elif mode == "open":
        args = _load(workdir)
        blob = (workdir / "blob.flrs").read_bytes()
        before = _peak_rss()
        result = open_sealed(blob, **args)
        after = _peak_rss()
        assert result.header.length == size
    else:
        args = _load(workdir)
        before = _peak_rss()
        open_file(workdir / "blob.flrs", workdir / "plain.bin", **args)
        after = _peak_rss()
        assert (workdir / "plain.bin").stat().st_size == size
    print(json.dumps({"before": before, "after": after}))


def _run_child(mode: str, size: int, workdir: str) -> str:
    return subprocess.run(
        [sys.executable, __file__, "--child", mode, str(size), workdir],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def memory(size: int) -> dict[str, float]:
    """Peak growth during seal, open and open_file, relative to the payload size."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="flame-bench-") as tmp:
        _run_child("prepare", size, tmp)
        for mode in ("seal", "open", "stream"):
            m = json.loads(_run_child(mode, size, tmp))
            out[mode] = max(0, m["after"] - m["before"]) / size
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 MiB and 100 MiB only")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, size, workdir = args.child
        _child(mode, int(size), Path(workdir))
        return 0

    names = QUICK if args.quick else tuple(SIZES)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (parallel chunk hashing needs idle cores)")
    print(
        f"{'payload':>8} {'raw enc':>9} {'seal':>9} {'ratio':>6} {'raw dec':>9} {'open':>9} "
        f"{'ratio':>6}   memory added / payload: seal, open, open_file (stream)"
    )
    for name in names:
        size = SIZES[name]
        t = timings(size, repeat=9 if size <= 100 * MIB else 3)
        mib = size / MIB
        mem = memory(size)
        print(
            f"{name:>8} {mib / t['raw_encrypt']:>6.0f}M/s {mib / t['seal']:>6.0f}M/s "
            f"{t['seal_ratio']:>6.2f} {mib / t['raw_decrypt']:>6.0f}M/s "
            f"{mib / t['open']:>6.0f}M/s {t['open_ratio']:>6.2f}   "
            f"{mem['seal']:.2f}x, {mem['open']:.2f}x, {mem['stream']:.2f}x",
            flush=True,
        )
    print("ratio = raw AES-256-GCM time / flame_lab time, median of interleaved rounds")
    print("        (goal: open >= 0.5 at 100 MiB); M/s are medians too.")
    print("memory = growth of the process peak (VmHWM) during the call (goal: < 2x).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
