"""Make ``import flame.star`` work where PrivateAIM's SDK is not installed.

flame_lab/_compat/ holds a tiny ``flame`` package that re-exports flame_lab.star. It is put on
sys.path (at the end) only when no ``flame`` is importable, so a real installation always wins.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent.parent / "_compat"


def ensure_importable() -> bool:
    """Let analysis code ``import flame.star``; True if this call added flame_lab's copy."""
    try:
        if importlib.util.find_spec("flame") is not None:
            return False
    except (ImportError, ValueError):  # a broken or spec-less ``flame`` is still someone's
        return False
    folder = str(COMPAT_DIR)
    if folder not in sys.path:
        sys.path.append(folder)
    importlib.invalidate_caches()
    return True
