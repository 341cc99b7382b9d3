"""What leaves a node, under its profile: checks, DP noise, the budget ledger, sealed logs.

One pure package shared by the sandbox's node agent and the researcher's local test, so that
``%flame test`` predicts what a node does (see ARCHITECTURE.md, "Trust: who decides what").
"""

from flame_lab.release.channel import Finding, ReleaseChannel
from flame_lab.release.checks import StrictRules, Violation, inspect, inspect_text
from flame_lab.release.ledger import BudgetCharge, PrivacyBudget
from flame_lab.release.logs import LogGate

__all__ = [
    "BudgetCharge",
    "Finding",
    "LogGate",
    "PrivacyBudget",
    "ReleaseChannel",
    "StrictRules",
    "Violation",
    "inspect",
    "inspect_text",
]
