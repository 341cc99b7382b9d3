"""``flame.star.aggregator_client``: the aggregator base class as ``Aggregator``."""

from flame_lab.star.nodes import StarAggregator as Aggregator

__all__ = ["Aggregator"]
