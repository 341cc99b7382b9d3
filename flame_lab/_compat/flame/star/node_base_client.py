"""``flame.star.node_base_client``: what analyzers and aggregators share, as ``Node``."""

from flame_lab.star.nodes import StarNode as Node

__all__ = ["Node"]
