"""Load a pickled FLAME result without letting it run code: an allow-list of exact globals.

Real FLAME nodes store ``output_type='pickle'`` results as ``pickle.dumps(result)``. Loading a
pickle may call any function it names, so this loader resolves only the globals listed here
(plain Python data, NumPy arrays and scalars, pandas frames, series and indexes): every other
global, whatever it is, is refused before it is imported or called. The list holds exact
``(module, name)`` pairs, never whole modules, and no function that imports, evaluates, opens
or looks up attributes. A researcher can add exact names for a result they trust
(``trusted=[...]``); names that can run commands or code are refused even then.

Why not a pickle scanner such as fickling: scanners decide by a deny-list or a static
analysis of what a pickle might do, and both have been bypassed repeatedly (fickling's own
advisories PYSEC-2026-2149/2150: missing modules, an allow-list pass that never ran). An
allow-list enforced in ``Unpickler.find_class``, as Python's documentation recommends for
"restricting globals", fails closed: what is not listed cannot even be imported.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import io
import pickle
import pickletools
from collections.abc import Iterable
from typing import Any

from flame_lab.errors import PayloadError

_PANDAS = {
    "pandas": (
        "DataFrame Series Index RangeIndex MultiIndex DatetimeIndex TimedeltaIndex "
        "CategoricalIndex PeriodIndex IntervalIndex Categorical CategoricalDtype Timestamp "
        "Timedelta Period Interval NA NaT Int8Dtype Int16Dtype Int32Dtype Int64Dtype UInt8Dtype "
        "UInt16Dtype UInt32Dtype UInt64Dtype Float32Dtype Float64Dtype BooleanDtype StringDtype "
        "DatetimeTZDtype PeriodDtype IntervalDtype ArrowDtype"
    ),
    "pandas.arrays": (
        "DatetimeArray TimedeltaArray IntegerArray FloatingArray BooleanArray StringArray "
        "PeriodArray IntervalArray ArrowStringArray ArrowExtensionArray"
    ),
    # pandas 3 keeps text (column names too) in Arrow arrays; the array is checked (below)
    "pyarrow.lib": "_restore_array py_buffer type_for_alias",
    "pandas.core.frame": "DataFrame",
    "pandas.core.series": "Series",
    "pandas.core.indexes.base": "Index _new_Index",
    "pandas.core.indexes.range": "RangeIndex",
    "pandas.core.indexes.multi": "MultiIndex",
    "pandas.core.indexes.datetimes": "DatetimeIndex _new_DatetimeIndex",
    "pandas.core.indexes.timedeltas": "TimedeltaIndex",
    "pandas.core.indexes.category": "CategoricalIndex",
    "pandas.core.indexes.period": "PeriodIndex _new_PeriodIndex",
    "pandas.core.indexes.interval": "IntervalIndex _new_IntervalIndex",
    "pandas.core.internals.managers": "BlockManager SingleBlockManager",
    "pandas.core.internals.blocks": "new_block",
    "pandas.core.arrays.categorical": "Categorical",
    "pandas.core.arrays.datetimes": "DatetimeArray",
    "pandas.core.arrays.timedeltas": "TimedeltaArray",
    "pandas.core.arrays.integer": (
        "IntegerArray Int8Dtype Int16Dtype Int32Dtype Int64Dtype UInt8Dtype UInt16Dtype "
        "UInt32Dtype UInt64Dtype"
    ),
    "pandas.core.arrays.floating": "FloatingArray Float32Dtype Float64Dtype",
    "pandas.core.arrays.boolean": "BooleanArray BooleanDtype",
    "pandas.core.arrays.string_": "StringArray StringDtype",
    "pandas.core.dtypes.dtypes": (
        "CategoricalDtype DatetimeTZDtype PeriodDtype IntervalDtype ArrowDtype"
    ),
    "pandas.core.arrays.string_arrow": "ArrowStringArray",
    "pandas.core.arrays.arrow.array": "ArrowExtensionArray",
    "pandas._libs.arrays": "__pyx_unpickle_NDArrayBacked",
    "pandas._libs.internals": "_unpickle_block",
    "pandas._libs.missing": "NA",
    "pandas._libs.tslibs.nattype": "_nat_unpickle",
    "pandas._libs.tslibs.timestamps": "_unpickle_timestamp Timestamp",
    "pandas._libs.tslibs.timedeltas": "_timedelta_unpickle Timedelta",
    "pandas._libs.tslibs.offsets": (
        "Day Hour Minute Second Milli Micro Nano BusinessDay Week MonthEnd MonthBegin "
        "QuarterEnd QuarterBegin YearEnd YearBegin"
    ),
    "pandas._libs.tslibs.period": "Period",
    "pandas._libs.interval": "Interval",
}

_PLAIN = {
    "builtins": (
        "int float complex bool str bytes bytearray list tuple dict set frozenset slice "
        "range object"
    ),
    "collections": "OrderedDict defaultdict deque Counter",
    "copyreg": "_reconstructor",
    "_codecs": "encode",  # protocol 2 writes bytes as _codecs.encode(text, 'latin1')
    "datetime": "date datetime time timedelta timezone",
    "decimal": "Decimal",
    "fractions": "Fraction",
    "uuid": "UUID",
    "numpy": "ndarray dtype",
    "numpy.core.multiarray": "_reconstruct scalar",
    "numpy._core.multiarray": "_reconstruct scalar",
    "numpy.core.numeric": "_frombuffer",
    "numpy._core.numeric": "_frombuffer",
}


def _pairs(table: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset((module, name) for module, names in table.items() for name in names.split())


#: The globals a result may name: plain Python data, NumPy and pandas, as exact pairs.
ALLOWED: frozenset[tuple[str, str]] = _pairs(_PLAIN) | _pairs(_PANDAS)

#: Globals (or whole modules) that can run commands or code: refused even when trusted.
NEVER_MODULES = frozenset(
    "os posix nt subprocess _posixsubprocess pty sys builtins importlib runpy shutil socket "
    "pickle _pickle marshal types code codeop ctypes platform webbrowser asyncio multiprocessing "
    "operator functools pdb bdb timeit cProfile profile trace site atexit io _io tempfile "
    "pkgutil inspect signal threading _thread ssl http urllib requests httpx pip venv "
    "ensurepip idlelib lib2to3 distutils setuptools zipimport glob fcntl resource gc".split()
)
NEVER_NAMES = frozenset(
    "eval exec compile open __import__ getattr setattr delattr globals locals vars input "
    "breakpoint help exit quit memoryview".split()
)


class UnsafePickle(PayloadError):
    """A pickle names a global that can run code or commands: it is never loaded."""

    default_hint = (
        "Do not load this result: whoever made it could run commands on your machine. Ask "
        "the node admins what ran, and compare the analysis that produced it."
    )


class UntrustedPickle(PayloadError):
    """A pickle names classes outside the allow-list; loading it needs the researcher's trust."""

    def __init__(self, message: str, *, names: list[str], hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.names = names


def dotted(module: str, name: str) -> str:
    return f"{module}.{name}"


def _normalised(module: str, name: str) -> tuple[str, str]:
    """Python 2 spellings that protocols 0-2 use (``__builtin__.set``) as Python 3 names."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def is_never(module: str, name: str) -> bool:
    """True for a global that can run commands or code (refused even when trusted)."""
    root = module.split(".")[0]
    if module == "builtins":
        return (module, name) not in ALLOWED
    return root in NEVER_MODULES or name.split(".")[0] in NEVER_NAMES


class _Stub:
    """Stands for every global during a dry run, so that nothing real is called."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def add(self, value: Any) -> None:
        pass


class _Recorder(pickle.Unpickler):
    """Walks a pickle, recording each global it names, resolving every one to a stub."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, fix_imports=False)
        self.names: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str) -> Any:
        pair = _normalised(module, name)
        if pair not in self.names:
            self.names.append(pair)
        return _Stub

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


_EXTENSION_OPCODES = frozenset({"EXT1", "EXT2", "EXT4"})


def _uses_extension_codes(data: bytes) -> bool:
    """True if the pickle names globals by copyreg extension code: those are resolved through
    a process-wide cache that can bypass find_class, so such pickles are never loaded."""
    try:
        return any(op.name in _EXTENSION_OPCODES for op, _arg, _pos in pickletools.genops(data))
    except Exception:  # damaged: the loaders report it
        return False


def globals_named(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle refers to, found without importing or calling any."""
    if _uses_extension_codes(data):
        return [("copyreg", "extension code")]
    recorder = _Recorder(io.BytesIO(data))
    # a damaged pickle: the names read up to the damage are still worth telling
    with contextlib.suppress(Exception):
        recorder.load()
    return recorder.names


def _validated_arrow_array(data: Any) -> Any:
    """pyarrow rebuilds an array from raw buffers without checking them: check them fully
    before anything reads the array (offsets or lengths past a buffer's end are refused)."""
    from pyarrow.lib import _restore_array

    array = _restore_array(data)
    array.validate(full=True)
    return array


#: Allowed globals replaced by a checking wrapper while loading.
_GUARDED = {("pyarrow.lib", "_restore_array"): _validated_arrow_array}


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, allowed: frozenset[tuple[str, str]]) -> None:
        super().__init__(file, fix_imports=False)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        module, name = _normalised(module, name)
        if (module, name) not in self._allowed or is_never(module, name):
            raise UntrustedPickle(
                f"the pickle names {dotted(module, name)}, which is not allowed",
                names=[dotted(module, name)],
            )
        guarded = _GUARDED.get((module, name))
        return guarded if guarded is not None else super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a result")


def _parse_trusted(trusted: Iterable[str]) -> frozenset[tuple[str, str]]:
    pairs = set()
    for entry in trusted:
        module, dot, name = str(entry).rpartition(".")
        if not dot or not module or not name:
            raise PayloadError(
                f"{entry!r} is not a class name with its module.",
                hint="Name each trusted class exactly, e.g. "
                "'sklearn.linear_model._stochastic_gradient.SGDClassifier'.",
            )
        pairs.add((module, name))
    return frozenset(pairs)


def load(data: bytes, *, trusted: Iterable[str] = (), what: str = "this result") -> Any:
    """The value of a pickle that names only allowed globals (plus ``trusted`` exact names).

    Raises UnsafePickle when it names anything that can run code (even if trusted), and
    UntrustedPickle, naming every class outside the allow-list and how to opt in, otherwise.
    """
    extra = _parse_trusted(trusted)
    if _uses_extension_codes(data):
        raise UnsafePickle(
            f"{what} is a pickle that names its globals by copyreg extension codes, which "
            "can slip past an allow-list: refused, nothing was loaded."
        )
    named = globals_named(data)
    never = [dotted(m, n) for m, n in named if is_never(m, n)]
    if never:
        raise UnsafePickle(
            f"{what} is a pickle that would call {', '.join(never)} when loaded: refused, "
            "nothing was loaded."
        )
    allowed = ALLOWED | extra
    outside = [dotted(m, n) for m, n in named if (m, n) not in allowed]
    if outside:
        raise UntrustedPickle(
            f"{what} is a pickle of classes flame_lab does not load on its own: "
            + ", ".join(outside)
            + ".",
            names=outside,
            hint="If you trust the analysis that made it, load it with "
            f"result(trusted={outside!r}); only those exact classes are then allowed.",
        )
    try:
        return _AllowListUnpickler(io.BytesIO(data), allowed).load()
    except UntrustedPickle as exc:  # a name the dry run did not reach: refuse all the same
        raise UntrustedPickle(
            f"{what} could not be loaded safely: {exc.message}.",
            names=exc.names,
            hint=f"If you trust it, pass result(trusted={exc.names!r}).",
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise PayloadError(
            f"{what} is a damaged pickle ({type(exc).__name__}: {exc}).",
            hint="Download it again; if it stays damaged, ask the aggregator node's admin.",
        ) from None


def looks_like_pickle(data: bytes) -> bool:
    """True for bytes that start as a pickle of protocol 2 or later (as FLAME's SDK writes)."""
    return len(data) >= 3 and data[0] == 0x80 and 2 <= data[1] <= 5
