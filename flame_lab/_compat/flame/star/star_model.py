"""``flame.star.star_model``: where FLAME's patterns package keeps StarModel."""

from flame_lab.star.model import StarModel

__all__ = ["StarModel"]
