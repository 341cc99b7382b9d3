"""A draft: the analysis files a researcher is about to submit, wherever they were written.

Cells, notebooks and plain files all become the same `Draft`, so that the magics, the Lab
server and the CLI submit exactly the same thing for the same code.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from flame_lab.errors import DraftError

if TYPE_CHECKING:
    from flame_lab.images.fit import ImageReport

DEFAULT_ENTRYPOINT = "analysis.py"
CELL_MAGIC = "%%flame"
# Model classes whose construction runs an analysis on a node.
MODEL_NAMES = frozenset({"StarModel", "StarLocalDPModel"})
# Always present where analyses run: flame_lab provides flame.star on every node it runs.
ALWAYS_AVAILABLE = frozenset({"flame"})


@dataclass(frozen=True)
class Source:
    """One file of a draft, and where it came from so errors can point there."""

    path: str
    text: str
    origin: str = ""
    line_offset: int = 0  # lines before the file's first line in its origin (the magic line)

    def where(self, lineno: int | None) -> str:
        place = self.origin or self.path
        return f"{place}, line {lineno + self.line_offset}" if lineno else place


@dataclass(frozen=True)
class ImportUse:
    """One ``import x`` / ``from x import y`` of a draft file: the top-level module and where."""

    module: str
    where: str
    path: str


@dataclass(frozen=True)
class CellHeader:
    """What a `%%flame` first line says: entrypoint, or an extra module of the bundle."""

    path: str
    is_entrypoint: bool


def parse_cell_header(line: str) -> CellHeader:
    """`%%flame` -> the entrypoint; `%%flame file helpers.py` -> an extra module."""
    words = line.split()
    if not words or words[0] != CELL_MAGIC:
        raise DraftError(f"not a {CELL_MAGIC} cell: {line.strip()!r}")
    args = words[1:]
    if not args:
        return CellHeader(DEFAULT_ENTRYPOINT, True)
    if len(args) == 2 and args[0] == "file":
        return CellHeader(_check_module_path(args[1]), False)
    raise DraftError(
        f"cannot read the cell header {line.strip()!r}",
        hint=f"Write `{CELL_MAGIC}` for the analysis, `{CELL_MAGIC} file helpers.py` for a module.",
    )


def _check_module_path(path: str) -> str:
    pure = PurePosixPath(path)
    if (
        not path.endswith(".py")
        or pure.is_absolute()
        or "\\" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
        or path.startswith(".flame-lab")
    ):
        raise DraftError(
            f"{path!r} is not a usable module path",
            hint="Use a relative path ending in .py, such as helpers.py or lib/stats.py.",
        )
    return path


def _check_file_path(path: object) -> str:
    """A draft's file name: non-empty, relative, no control characters, no '.' or '..' parts."""
    bad = ""
    if not isinstance(path, str) or not path:
        bad = "it is empty"
    elif any(ord(c) < 32 or ord(c) == 127 for c in path):
        bad = "it contains a control character (such as NUL or a newline)"
    elif path.startswith("/") or "\\" in path:
        bad = "it is absolute or uses backslashes"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        bad = "it has an empty, '.' or '..' part"
    if bad:
        raise DraftError(
            f"{path!r} is not a usable file name in a draft: {bad}",
            hint="Use relative paths such as analysis.py or lib/stats.py.",
        )
    return path  # type: ignore[return-value]


@dataclass
class Draft:
    """Files plus an entrypoint; re-adding a path replaces the earlier version."""

    sources: dict[str, Source] = field(default_factory=dict)
    entrypoint: str = DEFAULT_ENTRYPOINT
    # from_cells: a file that several cells define, with those cells in order (the last counts)
    overwritten: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_files(
        cls, files: Mapping[str, str | bytes], entrypoint: str = DEFAULT_ENTRYPOINT
    ) -> Draft:
        draft = cls(entrypoint=entrypoint)
        for path, text in files.items():
            if isinstance(text, bytes):
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError:
                    raise DraftError(f"{path} is not UTF-8 text") from None
            draft.add(path, text)
        return draft

    @classmethod
    def from_cells(cls, cells: Iterable[tuple[str, str]]) -> Draft:
        """From (cell label, cell source) pairs; cells without `%%flame` are ignored."""
        draft = cls()
        for label, text in cells:
            first, _, body = text.partition("\n")
            if first.strip().startswith(CELL_MAGIC):
                earlier = draft.sources.get(parse_cell_header(first).path)
                header = draft.add_cell(first, body, origin=label)
                if earlier is not None:
                    origins = draft.overwritten.setdefault(header.path, [earlier.origin])
                    origins.append(label)
        if not draft.sources:
            raise DraftError(
                f"no {CELL_MAGIC} cells found",
                hint=f"Start the cell holding your analysis with the line `{CELL_MAGIC}`.",
            )
        return draft

    @classmethod
    def from_notebook(cls, notebook: Mapping[str, Any] | str) -> Draft:
        """The notebook's `%%flame` code cells in notebook order, as the magics would build it."""
        try:
            nb = json.loads(notebook) if isinstance(notebook, str) else notebook
        except ValueError as exc:
            line = getattr(exc, "lineno", "?")
            raise DraftError(
                f"this notebook is damaged: its JSON ends or breaks at line {line}",
                hint="Open it in JupyterLab and save it again, or restore it from a copy.",
            ) from None
        cells = nb.get("cells") if isinstance(nb, Mapping) else None
        if not isinstance(cells, list):
            raise DraftError("this is not a notebook (no cell list)", hint="Send the .ipynb JSON.")
        pairs = []
        for index, cell in enumerate(cells, start=1):
            if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            pairs.append((f"cell {index}", text))
        return cls.from_cells(pairs)

    @classmethod
    def from_path(cls, path: Path) -> Draft:
        """A Python file (the entrypoint) or a notebook's `%%flame` cells."""
        if path.is_dir():
            raise DraftError(
                f"{path} is a folder, not a file",
                hint="Give the analysis's entrypoint (.py) or a notebook (.ipynb) in it.",
            )
        if not path.is_file():
            raise DraftError(f"{path} does not exist", hint="Give a .py file or a .ipynb notebook.")
        if path.suffix not in (".ipynb", ".py"):
            raise DraftError(f"{path} is neither a .py file nor a notebook")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DraftError(f"cannot read {path}: {exc.strerror or exc}") from None
        if path.suffix == ".ipynb":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise DraftError(
                    f"{path} is not a notebook: it is not UTF-8 text (a binary file?)",
                    hint="Give the .ipynb file JupyterLab saved.",
                ) from None
            try:
                return cls.from_notebook(text)
            except DraftError as exc:
                raise DraftError(f"{path}: {exc.message}", hint=exc.hint) from None
        return cls.from_files({path.name: data}, entrypoint=path.name)

    def add(self, path: str, text: str, *, origin: str = "", line_offset: int = 0) -> None:
        self.sources[_check_file_path(path)] = Source(path, text, origin, line_offset)

    def add_cell(self, header_line: str, body: str, *, origin: str = "") -> CellHeader:
        header = parse_cell_header(header_line)
        self.add(header.path, body, origin=origin or header.path, line_offset=1)
        if header.is_entrypoint:
            self.entrypoint = header.path
        return header

    def overwritten_notes(self) -> list[str]:
        """One line per file that several cells define: which cells, and that the last counts
        (the words of the Lab's Submit dialog)."""
        return [
            f"{len(origins)} cells define {path} ({', '.join(origins)}): only the last of them "
            f"({origins[-1]}) counts."
            for path, origins in sorted(self.overwritten.items())
        ]

    # -- reading -------------------------------------------------------------------------
    @property
    def files(self) -> dict[str, bytes]:
        return {path: src.text.encode("utf-8") for path, src in sorted(self.sources.items())}

    def check(
        self, image: str | None = None, *, offered: Iterable[str] | None = None
    ) -> ImageReport:
        """Refuse what would certainly fail on a node, with the author's line numbers.

        Also weighs the draft's imports against FLAME's master images: with ``image`` (a
        virtual path such as ``python/ml``) what that image lacks is an ImageError here,
        before anything is signed. The report says which known images fit (of ``offered``,
        the hub's images, when given).
        """
        if self.entrypoint not in self.sources:
            raise DraftError(
                f"the draft has no entrypoint {self.entrypoint!r}",
                hint=f"Write the analysis in a cell starting with `{CELL_MAGIC}`.",
            )
        trees = {path: self._parse(src) for path, src in self.sources.items()}
        self._check_imports()
        entry = self.sources[self.entrypoint]
        if not _calls_model(trees[self.entrypoint]):
            raise DraftError(
                f"{entry.where(None)} never calls StarModel(...)",
                hint="The entrypoint must run StarModel (or StarLocalDPModel) with your "
                "analyzer and aggregator classes, as on a FLAME node.",
            )
        from flame_lab.images.fit import report

        return report(self, image, offered=offered)

    @staticmethod
    def _parse(src: Source) -> ast.Module:
        try:
            return ast.parse(src.text, filename=src.path)
        except SyntaxError as exc:
            line = (exc.text or "").rstrip()
            raise DraftError(
                f"syntax error in {src.where(exc.lineno)}: {exc.msg}"
                + (f"\n    {line}" if line else ""),
                hint="Fix the line and run the cell again.",
            ) from None

    def imports(self) -> list[ImportUse]:
        """Every absolute import of the draft's files, by top-level module, with its place."""
        local = {_module_name(path) for path in self.sources}
        uses = []
        for path, src in sorted(self.sources.items()):
            for node in ast.walk(self._parse(src)):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in local:
                        uses.append(ImportUse(top, src.where(node.lineno), path))
        return uses

    def _check_imports(self) -> None:
        for use in self.imports():
            top = use.module
            if top in ALWAYS_AVAILABLE or top in sys.stdlib_module_names:
                continue
            if importlib.util.find_spec(top) is None:
                raise DraftError(
                    f"{use.where}: module {top!r} is not available",
                    hint="Install it in this kernel (e.g. `%pip install NAME`) so flame_lab can "
                    "tell which FLAME master image has it, or add your own module to the draft "
                    f"with `{CELL_MAGIC} file {top}.py`.",
                )


def _module_name(path: str) -> str:
    return PurePosixPath(path).with_suffix("").parts[0]


def _calls_model(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in MODEL_NAMES:
                return True
    return False
