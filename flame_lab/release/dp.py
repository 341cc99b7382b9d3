"""Differential privacy added by the node with OpenDP, from the node's own parameters.

The analysis may ask for local DP (``StarLocalDPModel(epsilon=..., sensitivity=...)``); the
node decides what it actually uses: never more epsilon per release than its policy allows,
never less sensitivity than its floor, values clamped to its clipping bounds if it has them.
The noise is OpenDP's Laplace mechanism on floats, which samples exactly (discretised, with
no floating-point holes, unlike ``numpy.random.laplace``); the epsilon charged is what OpenDP
reports the mechanism spends on that sensitivity.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from flame_lab.errors import DPParameterError
from flame_lab.privacy import DPRules
from flame_lab.star.runtime import LocalDP


@dataclass(frozen=True)
class NodeDP:
    """The parameters a node uses for one release: its own, whatever the analysis asked."""

    epsilon: float
    sensitivity: float
    clip: tuple[float, float] | None = None

    @property
    def scale(self) -> float:
        return self.sensitivity / self.epsilon


def node_parameters(requested: LocalDP, rules: DPRules) -> NodeDP:
    """The analysis's request bounded by the node: epsilon capped, sensitivity floored."""
    epsilon = min(float(requested.epsilon), rules.max_epsilon_per_release)
    sensitivity = max(float(requested.sensitivity), rules.min_sensitivity)
    clip = None
    if rules.clip_lower is not None and rules.clip_upper is not None:
        clip = (float(rules.clip_lower), float(rules.clip_upper))
    return NodeDP(epsilon, sensitivity, clip)


@functools.lru_cache(maxsize=64)
def _mechanism(scale: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp.m.make_laplace(
        dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale
    )


def epsilon_of(params: NodeDP) -> float:
    """The epsilon OpenDP says one noisy number costs at this sensitivity and scale."""
    return float(_mechanism(params.scale).map(params.sensitivity))


def noisy_number(value: float, params: NodeDP) -> float:
    """``value`` (clamped to the node's bounds) plus OpenDP Laplace noise of scale s/epsilon."""
    number = float(value)
    if not math.isfinite(number):
        raise DPParameterError(
            f"differential privacy needs finite numbers, not {value!r}",
            hint="Return finite numbers from a StarLocalDPModel analysis.",
        )
    if params.clip is not None:
        number = min(max(number, params.clip[0]), params.clip[1])
    return float(_mechanism(params.scale)(number))


@dataclass(frozen=True)
class Noised:
    """A release with noise on every number, and the epsilon it cost in total."""

    value: Any
    numbers: int
    epsilon: float


def noise_release(value: Any, params: NodeDP) -> Noised:
    """Noise every number of a release (dicts, lists, arrays); strings and None stay as they
    are (the strict checks still read them). Each number costs ``epsilon_of(params)``."""
    counter = [0]

    def walk(item: Any) -> Any:
        if item is None or isinstance(item, (str, bool, np.bool_)):
            return item
        if isinstance(item, (int, float, np.integer, np.floating)):
            counter[0] += 1
            return noisy_number(float(item), params)
        if isinstance(item, Mapping):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return (
                type(item)(walk(v) for v in item)
                if not hasattr(item, "_fields")
                else [walk(v) for v in item]
            )
        if isinstance(item, np.ndarray) and item.dtype.kind in "biuf":
            flat = [noisy_number(float(x), params) for x in item.ravel()]
            counter[0] += len(flat)
            return np.array(flat, dtype=np.float64).reshape(item.shape)
        raise DPParameterError(
            f"the node cannot add noise to a {type(item).__name__}",
            hint="A DP release holds numbers, lists, dicts or numeric arrays.",
        )

    noised = walk(value)
    return Noised(noised, counter[0], epsilon_of(params) * counter[0])
