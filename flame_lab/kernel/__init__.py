"""The notebook face of flame_lab: `%flame` magics, the live monitor widget, provenance.

Kept light: importing it loads neither the hub client nor NumPy (see ``magics``).
"""
