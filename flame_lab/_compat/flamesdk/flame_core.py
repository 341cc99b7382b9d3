"""``flamesdk.flame_core``: FlameCoreSDK by its module path."""

from flame_lab.star.core import FlameCoreSDK

__all__ = ["FlameCoreSDK"]
