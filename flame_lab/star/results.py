"""Turning what an aggregator returns into the final result(s) a node releases.

``output_type`` converts as FLAME's SDK does: ``'str'`` -> ``str(result)``, ``'bytes'`` ->
``bytes(result)``; if that conversion fails the SDK falls back to ``'pickle'`` with a warning,
and so do we. In flame_lab ``'pickle'`` means "the Python object itself": the node encodes it
with flame_lab.security.payload (JSON, .npy, tables), never with pickle.
Local DP (StarLocalDPModel) needs finite numbers and releases them as ``'str'`` like the SDK.
As on FLAME, a node adds the noise to each (its runtime says ``adds_dp_noise``), never the
analysis; only runtimes without a node (the in-process tester) add it here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any, cast

from flame_lab.errors import DPParameterError, PayloadError, StarError
from flame_lab.star.runtime import (
    OUTPUT_TYPES,
    FinalSubmission,
    LocalDP,
    OutputType,
    ReleasedResult,
)

if TYPE_CHECKING:
    import numpy as np

Warn = Callable[[str], None]


def check_output_type(output_type: Any, multiple_results: bool) -> None:
    """Refuse an output_type the SDK does not know, before any node starts work."""
    kinds = output_type if isinstance(output_type, list) else [output_type]
    for kind in kinds:
        if kind not in OUTPUT_TYPES:
            raise StarError(
                f"Unknown output_type {kind!r}.",
                hint="Use 'str', 'bytes' or 'pickle'.",
            )


def check_local_dp(epsilon: float | None, sensitivity: float | None) -> LocalDP | None:
    """LocalDP for valid parameters, None when both are absent, an error otherwise."""
    if epsilon is None and sensitivity is None:
        return None
    if epsilon is None or sensitivity is None:
        raise DPParameterError(
            "Local differential privacy needs both epsilon and sensitivity; only one was given."
        )
    for name, value in (("epsilon", epsilon), ("sensitivity", sensitivity)):
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise DPParameterError(f"Local DP {name} must be a finite number > 0, got {value!r}.")
    return LocalDP(epsilon=float(epsilon), sensitivity=float(sensitivity))


def prepare_submission(
    result: Any,
    output_type: OutputType | list[OutputType] = "str",
    multiple_results: bool = False,
    local_dp: LocalDP | dict[str, float] | None = None,
    filename: str | Sequence[str] | None = None,
    *,
    rng: np.random.Generator | None = None,
    warn: Warn = lambda _msg: None,
    noise: bool = True,
) -> FinalSubmission:
    """Apply multiple_results, local DP and output_type conversion; warn() as the SDK warns."""
    check_output_type(output_type, multiple_results)
    dp = _as_local_dp(local_dp)
    if multiple_results and not isinstance(result, list | tuple):
        warn(
            f"multiple_results=True, but the result is a {type(result).__name__}, not a list "
            "or tuple: it is released as one result."
        )
        multiple_results = False
    elif multiple_results and len(result) == 1:
        multiple_results = False  # as FLAME: a one-element list goes out whole, as one result
    items = list(result) if multiple_results else [result]
    kinds = _per_item(output_type, len(items), "output types", "output_type", warn)
    names = _filenames(filename, len(items), multiple_results, warn)

    if dp is not None:
        # As FLAME's SDK: each released number gets its own noise, and goes out as text.
        if any(kind != "str" for kind in kinds):
            warn(
                "Result submission with local differential privacy releases results as 'str'; "
                f"output_type {output_type!r} is ignored."
            )
            kinds = ["str"] * len(items)
        if (
            not noise
        ):  # a node adds the noise (FLAME's node services do): the numbers go as they are
            numbers = [_dp_number(item) for item in items]
            return FinalSubmission(
                tuple(ReleasedResult(v, "str", n) for v, n in zip(numbers, names, strict=True)),
                multiple_results=multiple_results,
                local_dp=dp,
            )
        items = [add_noise(item, dp, rng) for item in items]

    released = tuple(
        _convert(item, kind, name, warn)
        for item, kind, name in zip(items, kinds, names, strict=True)
    )
    return FinalSubmission(results=released, multiple_results=multiple_results, local_dp=dp)


def add_noise(value: Any, dp: LocalDP, rng: np.random.Generator | None = None) -> float:
    """Laplace noise (scale = sensitivity/epsilon) on one finite number; refuse anything else."""
    return _laplace(_dp_number(value), sensitivity=dp.sensitivity, epsilon=dp.epsilon, rng=rng)


def _dp_number(value: Any) -> float:
    """The one finite number a local-DP release needs, or a clear error."""
    if not _is_number(value):
        raise DPParameterError(
            "Local differential privacy needs a single number as the final result, but the "
            f"aggregator returned a {type(value).__name__}.",
            hint="Return one int or float from aggregation_method when epsilon and "
            "sensitivity are set (StarLocalDPModel), or use StarModel.",
        )
    if not math.isfinite(value):
        raise DPParameterError(
            f"Local differential privacy needs a finite number, got {value!r}.",
            hint="Make aggregation_method return a finite int or float.",
        )
    return float(value)


def _laplace(value: float, *, sensitivity: float, epsilon: float, rng: Any) -> float:
    """The in-process tester's noise: a seeded NumPy generator when given (reproducible
    tests, never a release), else OpenDP's exact sampler as on a node."""
    if rng is not None:
        return value + float(rng.laplace(0.0, sensitivity / epsilon))
    from flame_lab.release.dp import NodeDP, noisy_number

    return noisy_number(value, NodeDP(epsilon, sensitivity))


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _as_local_dp(local_dp: LocalDP | dict[str, float] | None) -> LocalDP | None:
    if local_dp is None or isinstance(local_dp, LocalDP):
        return local_dp
    if isinstance(local_dp, dict):
        return check_local_dp(local_dp.get("epsilon"), local_dp.get("sensitivity"))
    raise DPParameterError(
        "local_dp must be a dict with 'epsilon' and 'sensitivity'.",
        hint="Pass local_dp={'epsilon': ..., 'sensitivity': ...}.",
    )


def _per_item(given: Any, count: int, what: str, name: str, warn: Warn) -> list[Any]:
    """One entry per result, with flamesdk 0.6's leniency: a list for a single result gives its
    first entry, a longer list is cut (both with a warning), a shorter one is an error."""
    if not isinstance(given, list):
        return [given] * count
    if len(set(map(repr, given))) == 1:
        return [given[0]] * count
    if count == 1:
        warn(f"A list of {what} was given for a single result: the first one is used.")
        return [given[0]]
    if len(given) < count:
        raise StarError(
            f"{len(given)} {what} were given for {count} results.",
            hint=f"Give one {name} per result, or a single {name} for all.",
        )
    if len(given) > count:
        warn(f"{len(given)} {what} were given for {count} results: the first {count} are used.")
    return list(given[:count])


def _filenames(
    filename: str | Sequence[str] | None, count: int, multiple: bool, warn: Warn
) -> list[str | None]:
    if filename is None:
        return [None] * count
    if isinstance(filename, str):
        return [numbered(filename, i) for i in range(count)] if multiple else [filename]
    return _per_item(list(filename), count, "file names", "filename", warn)


def numbered(path: str, index: int) -> str:
    """``result.csv`` -> ``result_1.csv`` for the first of several results (as the SDK does)."""
    stem, dot, ext = path.rpartition(".")
    if dot and stem and "/" not in ext:
        return f"{stem}_{index + 1}.{ext}"
    return f"{path}_{index + 1}"


def _convert(item: Any, kind: OutputType, name: str | None, warn: Warn) -> ReleasedResult:
    try:
        if kind == "str":
            text = str(item)
            text.encode("utf-8")
            return ReleasedResult(text, "str", name)
        if kind == "bytes":
            return ReleasedResult(bytes(item), "bytes", name)
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        warn(
            f"Failed to convert the result to output_type={kind!r} ({type(exc).__name__}); "
            "releasing it as a Python object ('pickle') instead."
        )
    return ReleasedResult(item, cast(OutputType, "pickle"), name)


# -- results as a real FLAME node stores them ------------------------------------------------
#: File name endings flamesdk gives each output type (its EXT_TO_OUTPUT_TYPE).
STR_EXTENSIONS = (".txt", ".csv", ".tsv", ".json", ".xml", ".yaml", ".yml")
PICKLE_EXTENSIONS = (".pkl", ".pickle")
BYTES_EXTENSIONS = (".bin", ".gz", ".zip", ".png")


def decode_node_result(
    name: str,
    data: bytes,
    *,
    trusted: Sequence[str] = (),
    warn: Warn | None = None,
) -> Any:
    """A result file written by a real FLAME node, as the value the analysis released.

    'str' results (``.txt`` and the other text endings) stay text, never parsed; 'bytes'
    results stay bytes; pickles (``.pkl``, or pickle bytes under another name) are loaded
    through flame_lab.star.pickles' allow-list. A pickle of other classes stays bytes, and
    ``warn`` says which classes and how to trust them; one that could run code is refused.
    """
    from flame_lab.star import pickles

    if warn is None:
        import warnings

        def warn(text: str) -> None:
            warnings.warn(text, stacklevel=4)

    ext = _extension(name)
    if ext in PICKLE_EXTENSIONS or (
        ext not in STR_EXTENSIONS + BYTES_EXTENSIONS and pickles.looks_like_pickle(data)
    ):
        try:
            return pickles.load(data, trusted=trusted, what=f"result file {name!r}")
        except pickles.UntrustedPickle as exc:
            warn(f"{exc.message} It is returned as bytes. {exc.hint}")
            return data
        except pickles.UnsafePickle:
            raise
        except PayloadError:
            if ext in PICKLE_EXTENSIONS:
                raise
            return data  # bytes that only began like a pickle
    if ext in BYTES_EXTENSIONS:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def decode_sealed_payload(
    data: bytes, content_type: str, *, trusted: Sequence[str] = (), warn: Warn | None = None
) -> Any:
    """A result payload opened from a sealed envelope; pickles via the allow-list only."""
    from flame_lab.security import payload

    if content_type != payload.PICKLE:
        return payload.decode(data, content_type)
    return decode_node_result("result.pkl", data, trusted=trusted, warn=warn)


def _extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 else ""
