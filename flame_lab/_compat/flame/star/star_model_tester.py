"""``flame.star.star_model_tester``: where FLAME's patterns package keeps the tester."""

from flame_lab.star.tester import StarModelTester

__all__ = ["StarModelTester"]
