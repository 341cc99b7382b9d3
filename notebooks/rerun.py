"""Re-run example notebooks in place against a fresh sandbox, as nbval will, and store them.

``python notebooks/rerun.py 02 04`` (prefixes or names). The runner's throwaway home, its key id
and its temporary paths never reach the stored outputs: paths read as a default install's, the
key id as ``xxxx ...``; nbval's sanitize.cfg masks the rest (ports, ids, times).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import NOTEBOOKS, NotebookSandbox  # the very sandbox nbval uses

KEY_ID = re.compile(r"(Key id:\s+)([0-9a-f]{4} ){7}[0-9a-f]{4}")
PLACEHOLDER_ID = " ".join(["xxxx"] * 8)


def _clean(text: str, root: Path) -> str:
    home = str(root / "home")
    text = text.replace(home + "/keys", "~/.local/share/flame-lab/keys")
    text = text.replace(home + "/sandbox", "~/.local/share/flame-lab/sandbox")
    text = text.replace(home + "/config", "~/.config/flame-lab")
    text = KEY_ID.sub(lambda m: m.group(1) + PLACEHOLDER_ID, text)
    if str(root) in text:
        raise SystemExit(f"an output still names the temporary folder {root}; extend _clean")
    return text


def _clean_outputs(notebook: nbformat.NotebookNode, root: Path) -> None:
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _clean(output["text"], root)
            for mime, value in output.get("data", {}).items():
                if isinstance(value, str) and mime.startswith("text/"):
                    output["data"][mime] = _clean(value, root)
            if "traceback" in output:
                output["traceback"] = [_clean(t, root) for t in output["traceback"]]
            if "evalue" in output:
                output["evalue"] = _clean(output["evalue"], root)


def main(prefixes: list[str]) -> None:
    paths = [
        p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if any(p.name.startswith(x) for x in prefixes)
    ]
    if not paths:
        raise SystemExit(f"no notebook starts with {prefixes}")
    sandbox = NotebookSandbox()
    sandbox.start()
    try:
        assert sandbox.root is not None
        for path in paths:
            notebook = nbformat.read(path, as_version=4)
            NotebookClient(
                notebook, timeout=900, resources={"metadata": {"path": str(NOTEBOOKS)}}
            ).execute()
            _clean_outputs(notebook, sandbox.root)
            nbformat.write(notebook, path)
            print(f"stored {path.name}")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
