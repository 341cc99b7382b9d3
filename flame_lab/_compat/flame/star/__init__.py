"""``flame.star`` as implemented by flame_lab.star, for code that must also run on FLAME nodes."""

from flame_lab.star import (
    StarAggregator,
    StarAnalyzer,
    StarLocalDPModel,
    StarModel,
    StarModelTester,
)

__all__ = ["StarAggregator", "StarAnalyzer", "StarLocalDPModel", "StarModel", "StarModelTester"]
