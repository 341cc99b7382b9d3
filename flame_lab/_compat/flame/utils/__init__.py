"""``flame.utils``: helpers of FLAME's patterns package."""
