"""FLAME master images: which one a draft needs, and the sandbox's stand-ins for them.

``catalog`` holds the known images' package lists (shipped data from PrivateAIM's
master-images), ``capture`` reads a draft's needs in this kernel, ``fit`` weighs one against
the other.
"""
