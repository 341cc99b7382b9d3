"""``flame.star.analyzer_client``: the analyzer base class under its module name ``Analyzer``."""

from flame_lab.star.nodes import StarAnalyzer as Analyzer

__all__ = ["Analyzer"]
