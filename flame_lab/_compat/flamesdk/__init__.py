"""flame_lab's stand-in for PrivateAIM's ``flamesdk`` (used only where it is not installed)."""

from flame_lab.star.core import FlameCoreSDK

__all__ = ["FlameCoreSDK"]
