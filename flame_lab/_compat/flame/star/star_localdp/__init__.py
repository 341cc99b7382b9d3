"""``flame.star.star_localdp``: the local differential privacy model."""

from flame_lab.star.model import StarLocalDPModel

__all__ = ["StarLocalDPModel"]
