"""The domain stays importable without Jupyter: it never reaches into the notebook face.

flame_lab.kernel (magics, widgets) and flame_lab.server are faces; the domain (federation,
cli, security, star, release, images, the top-level modules and rendering) must not import
them, nor IPython or ipywidgets, neither at import time nor inside a function.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import flame_lab

PACKAGE = Path(flame_lab.__file__).parent
# faces, the built Lab extension, the SDK shim and example analyses (they run on nodes)
FACES = ("kernel", "server", "labextension", "_compat", "examples")
FORBIDDEN = ("flame_lab.kernel", "flame_lab.server", "IPython", "ipywidgets", "ipykernel")
# The one deliberate bridge: Analysis.monitor() is the notebook's own way to show the live
# widget for a run; it imports the widget only when a notebook calls it.
ALLOWED = {("federation.py", "Analysis.monitor", "flame_lab.kernel.widgets")}


def domain_files() -> list[Path]:
    """Every module outside the faces; flame_lab/__init__.py hosts Jupyter's entry points."""
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] not in FACES
        and p != PACKAGE / "__init__.py"
        and p.name != "__main__.py"
    )


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def imports_in(path: Path) -> list[tuple[str, str]]:
    """(enclosing function's qualified name, imported module) for every import in the file."""
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Import):
                found.extend((".".join(scope), a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((".".join(scope), child.module))
                found.extend((".".join(scope), f"{child.module}.{a.name}") for a in child.names)
            visit(child, scope)

    visit(ast.parse(path.read_text(encoding="utf-8")), [])
    return found


def test_the_domain_checked_here_covers_the_packages_named_in_the_house_plan():
    tops = {p.relative_to(PACKAGE).parts[0] for p in domain_files()}
    for part in ("federation.py", "cli", "security", "star", "release", "images", "rendering.py"):
        assert part in tops
    assert not tops & set(FACES)


def test_no_domain_module_imports_the_notebook_face_or_jupyter_anywhere_in_its_source():
    offending = []
    for path in domain_files():
        rel = str(path.relative_to(PACKAGE))
        for scope, module in imports_in(path):
            allowed = any(
                (rel, scope) == (f, s) and (module == m or module.startswith(m + "."))
                for f, s, m in ALLOWED
            )
            if forbidden(module) and not allowed:
                offending.append(f"{rel}: {scope or '<module>'} imports {module}")
    assert offending == []


def test_the_scan_sees_an_import_hidden_in_a_method(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "class A:\n    def f(self):\n        from flame_lab.kernel import render\n"
        "def g():\n    import IPython.display\n"
    )
    bad = [(s, m) for s, m in imports_in(sample) if forbidden(m)]
    assert ("A.f", "flame_lab.kernel") in bad and ("g", "IPython.display") in bad


def test_importing_the_domain_and_drawing_a_status_loads_no_jupyter():
    modules = sorted(
        "flame_lab."
        + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for p in domain_files()
    )
    code = f"""
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
from flame_lab.federation import AnalysisStatus, NodeState
from flame_lab.cli.analyses import log_time
node = NodeState(node_id="n-1", name="uk-aachen", type="default", approval="approved",
                 execution="running", progress=40, comment="")
status = AnalysisStatus(analysis_id="an-1", name="mean age", overall="running", progress=40,
                        nodes=(node,))
assert "uk-aachen" in status._repr_html_()
assert log_time("1700000000000").startswith("2023-11-14")
print(json.dumps(sorted(sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    loaded = [m for m in json.loads(out.stdout) if forbidden(m)]
    assert loaded == []
