"""``flame.star.star_localdp.star_localdp_model``: StarLocalDPModel, by its module path."""

from flame_lab.star.model import StarLocalDPModel

__all__ = ["StarLocalDPModel"]
