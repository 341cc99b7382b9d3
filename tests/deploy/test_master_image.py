"""deploy/master-image/: the recipe of the sealing master image, checked without an engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from flame_lab.images import catalog as catalogs
from flame_lab.security import selfseal

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "deploy" / "master-image"


def _instructions() -> list[tuple[str, str]]:
    text = (RECIPE / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split()[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _copied_modules() -> dict[str, str]:
    """Repository path -> path in the image, for each COPY of flame_lab's modules."""
    out = {}
    for op, args in _instructions():
        if op == "COPY" and "flame_lab/" in args:
            *sources, target = args.split()
            for source in sources:
                out[source] = target.rstrip("/") + "/" + Path(source).name
    return out


def test_it_is_python_base_on_the_catalogs_python_with_the_same_sdk():
    steps = _instructions()
    entry = catalogs.load(with_user=False).get(selfseal.SEALING_IMAGE)
    assert steps[0] == ("FROM", f"python:{entry.python}")
    base = catalogs.load(with_user=False).get("python/base")
    sdk = [a for op, a in steps if op == "RUN" and "python-sdk-patterns" in a]
    assert len(sdk) == 1 and sdk[0].endswith(f"python-sdk-patterns.git@{base.sdk}")
    assert entry.sdk == base.sdk


def test_cryptography_is_pinned_within_what_flame_lab_and_the_catalog_accept():
    lines = [
        ln
        for ln in (RECIPE / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert len(lines) == 1
    pin = Requirement(lines[0])
    assert pin.name == "cryptography" and str(pin.specifier).startswith("==")
    version = Version(str(pin.specifier)[2:])
    pyproject = (ROOT / "pyproject.toml").read_text()
    wanted = Requirement(re.search(r'"(cryptography[^"]*)"', pyproject).group(1))
    assert version in wanted.specifier
    entry = catalogs.load(with_user=False).get(selfseal.SEALING_IMAGE)
    listed = {r.name: r for r in entry.requirements}
    assert version in listed["cryptography"].specifier and "flame-lab" in listed


def test_every_module_the_sealing_imports_is_copied_and_nothing_else_is_needed(tmp_path):
    copied = _copied_modules()
    for source in copied:
        assert (ROOT / source).is_file(), source
    # lay the copied files out as the image does, and import the sealing from them alone
    for source, target in copied.items():
        dest = tmp_path / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / source, dest)
    prefix = tmp_path / "opt" / "flame-lab"
    probe = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(prefix)!r})
        import flame_lab.security.selfseal as selfseal
        from flame_lab.security import envelope, keys
        from flame_lab.security.bundle import build
        assert selfseal.__file__.startswith({str(prefix)!r}), selfseal.__file__
        me = keys.Identity.generate()
        signed = build({{"a.py": b"x"}}, "a.py", me)
        blob, = selfseal.seal_values(
            [{{"n": 7}}], manifest=signed.manifest, bundle_hash=signed.bundle_hash,
            analysis_id="an-1", node_id="agg",
        )
        opened = envelope.open_sealed(
            blob, identity=me, trusted_nodes={{}}, guard=None, unauthenticated_origin=True,
            expected=envelope.Expected("an-1", signed.bundle_hash, signed.manifest.run_nonce,
                                       frozenset([me.key_id])),
        )
        assert opened.payload == b'{{"n":7}}', opened.payload
        third = {{m.split(".")[0] for m in sys.modules}} - set(sys.stdlib_module_names)
        import json
        print(json.dumps(sorted(third)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    third = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert third - {"__main__", "_distutils_hack"} <= {
        "flame_lab",
        "cryptography",
        "_cffi_backend",
        "_openssl",
    }
