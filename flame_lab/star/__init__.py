"""flame_lab's implementation of FLAME's ``flame.star`` analysis API.

Analysis code imports ``flame.star`` (see :func:`ensure_importable`) and runs unchanged on
real FLAME nodes, on sandbox nodes, or locally under :class:`StarModelTester`. Where it runs
is decided by the current :class:`Runtime` (flame_lab.star.runtime).
"""

from flame_lab.star.compat import ensure_importable
from flame_lab.star.core import FlameCoreSDK
from flame_lab.star.model import StarLocalDPModel, StarModel
from flame_lab.star.nodes import StarAggregator, StarAnalyzer
from flame_lab.star.runtime import (
    RUNTIME_ENV,
    FinalSubmission,
    LocalDP,
    Message,
    ReleasedResult,
    Runtime,
    current_runtime,
    install_runtime,
    register_connector,
    require_runtime,
    use_runtime,
)
from flame_lab.star.tester import StarModelTester

__all__ = [
    "RUNTIME_ENV",
    "FinalSubmission",
    "FlameCoreSDK",
    "LocalDP",
    "Message",
    "ReleasedResult",
    "Runtime",
    "StarAggregator",
    "StarAnalyzer",
    "StarLocalDPModel",
    "StarModel",
    "StarModelTester",
    "current_runtime",
    "ensure_importable",
    "install_runtime",
    "register_connector",
    "require_runtime",
    "use_runtime",
]
