"""flame_lab: a Jupyter workbench for federated analysis on PrivateAIM's FLAME platform."""

__version__ = "0.1.0"
