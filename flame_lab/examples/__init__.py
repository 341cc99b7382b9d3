"""Example analyses shipped with flame_lab (used by `flame-lab demo`)."""
