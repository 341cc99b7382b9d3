"""``flame.utils.mock_flame_core``: the FlameCoreSDK of one node in a local test."""

from flame_lab.star.mock import MockFlameCoreSDK

__all__ = ["MockFlameCoreSDK"]
