"""One exception tree for everything a user can cause.

Every error says what happened (``message``) and what to do next (``hint``), so that the
kernel, the CLI and the Lab UI can show it without a traceback from flame_lab's internals.
"""

from __future__ import annotations


class FlameLabError(Exception):
    """Base of every error flame_lab raises on purpose."""

    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        """The shape the REST API and the widgets show."""
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint}


# -- configuration -------------------------------------------------------------------------
class ConfigError(FlameLabError):
    """The configuration file or environment is unusable."""

    default_hint = "Check ~/.config/flame-lab/config.toml or the FLAME_LAB_* environment variables."


# -- keys ----------------------------------------------------------------------------------
class KeyFileError(FlameLabError):
    """A key file is missing, unreadable or malformed."""

    default_hint = "Create an identity with `flame-lab keys init`."


class KeyFileExists(KeyFileError):
    default_hint = "Remove or move the existing key file first, or pass a different path."


class KeyFileMissing(KeyFileError):
    pass


class InsecurePermissions(KeyFileError):
    default_hint = "Run `chmod 600` on the key file and `chmod 700` on its folder."


class WrongPassphrase(KeyFileError):
    default_hint = "Re-enter the passphrase; FLAME_LAB_PASSPHRASE overrides the prompt."


class WeakKdfParameters(KeyFileError):
    default_hint = "Re-create the key file with `flame-lab keys init`; its KDF is too weak."


class UnsupportedVersion(KeyFileError):
    default_hint = "Upgrade flame_lab; this file was written by a newer or unknown version."


# -- bundles (signed analysis code) --------------------------------------------------------
class BundleError(FlameLabError):
    """A bundle could not be built or did not verify."""

    default_hint = "Re-submit the analysis from the researcher's notebook."


class UnsafePath(BundleError):
    default_hint = "Use relative paths without '..', backslashes or symlinks."


class BundleTooLarge(BundleError):
    default_hint = "Keep data out of the analysis code; nodes hold the data."


class UntrustedSigner(BundleError):
    default_hint = "The node admin must add the researcher's public key to the trusted keys."


class BundleExpired(BundleError):
    default_hint = "Submit the analysis again to get a fresh signature."


# -- sealed results ------------------------------------------------------------------------
class EnvelopeError(FlameLabError):
    """A sealed result was rejected; it is never partly opened."""

    default_hint = "Do not trust this result; fetch it again or ask the node admin."


class TamperedResult(EnvelopeError):
    pass


class NotARecipient(EnvelopeError):
    default_hint = "Open the result with the identity the analysis was submitted with."


class ReplayedResult(EnvelopeError):
    default_hint = "This result was already opened; use the object you got the first time."


class PayloadError(FlameLabError):
    """A result payload has a type flame_lab refuses to encode or decode."""

    default_hint = "Return JSON-compatible values, NumPy arrays or tables."


# -- hub and federation --------------------------------------------------------------------
class HubError(FlameLabError):
    """The FLAME Hub (sandbox or real) refused or failed a request."""

    default_hint = "Check the hub URL and that it is running (`flame-lab sandbox status`)."


class HubUnreachable(HubError):
    """The hub did not answer. ``maybe_done`` is False only when the request never reached it
    (no connection), so that a retry cannot repeat something the hub already did."""

    maybe_done = True


class HubStorageFull(HubError):
    """The hub answered 507: it has no room to store what was sent."""

    default_hint = (
        "The hub's disk is full: free space there (for the sandbox: `flame-lab sandbox gc`, "
        "or delete old analyses), then try again; nothing was stored."
    )


class HubAuthError(HubError):
    default_hint = "Log in again or check the token, user name and password."


class NotFound(HubError):
    default_hint = "Check the id; `flame-lab status` lists your analyses."


class RecordError(FlameLabError):
    """A submission record on this machine cannot be written or read."""

    default_hint = "Check the records folder (FLAME_LAB_DATA_DIR) has space and is writable."


class SandboxError(FlameLabError):
    default_hint = "See `flame-lab sandbox status`; `flame-lab sandbox reset` starts afresh."


# -- analyses ------------------------------------------------------------------------------
class DraftError(FlameLabError):
    """The analysis code cannot be submitted as it is."""

    default_hint = "Fix the code in the %%flame cells and run them again."


class AnalysisFailed(FlameLabError):
    default_hint = "Read the node logs with `%flame logs ID` or `flame-lab logs ID`."


class ResultNotReady(AnalysisFailed):
    """The analysis has not finished yet: nothing failed, its result is still to come."""

    default_hint = "Wait for it: `%flame watch ID --wait` (in Python: `run.wait()`)."


class PolicyRefused(FlameLabError):
    """A node's disclosure or privacy policy refused to release a result."""

    default_hint = "Aggregate over more records, or ask the node's data steward."


# -- bundles: one class per reason a node refuses (appended by the bundle work) -----------
class TamperedBundle(BundleError):
    """The files received differ from the files the researcher signed."""

    default_hint = "Do not run this code; ask the researcher to submit the analysis again."


class BadBundleSignature(BundleError):
    default_hint = "Do not run this code; the bundle was not signed by the key it names."


class BundleNotYetValid(BundleError):
    default_hint = "Check the clocks of the node and of the researcher's machine (use NTP)."


class BadEntrypoint(BundleError):
    default_hint = "Name one of the bundle's .py files as the entrypoint."


class MalformedManifest(BundleError):
    """The bundle manifest is not one flame_lab writes."""

    default_hint = "Build the bundle with flame_lab; manifests must not be edited by hand."


class DuplicatePath(MalformedManifest):
    default_hint = "Each file may appear once in a bundle; build the bundle again."


class UnsupportedBundleVersion(MalformedManifest):
    default_hint = "Use the same flame_lab bundle format version on both ends; upgrade flame_lab."


class PassphraseError(KeyFileError):
    """No usable passphrase was given (empty, or the two entries differ)."""

    default_hint = "Type a non-empty passphrase, or set FLAME_LAB_PASSPHRASE."


# -- node policy, privacy and node data (privacy.py, sandbox/node/) -------------------------
class PolicyFileError(ConfigError):
    """A node's policy or privacy-budget file is missing, malformed or holds unknown settings."""

    default_hint = "Fix the file named above; `flame_lab.privacy.dump_policy` writes a valid one."


class DPParameterError(FlameLabError, ValueError):
    """Differential-privacy noise was asked for with unusable parameters."""

    default_hint = "Pass a finite epsilon > 0 and sensitivity > 0 and a numeric value."


class NodeDataError(FlameLabError):
    """A node's data folder holds something the node refuses or cannot load."""

    default_hint = "Fix, move or remove the file named above, then start the node again."


class FhirQueryError(FlameLabError):
    """An analysis asked the node's FHIR store for a search it does not support."""

    default_hint = "Change the FHIR query in the analysis code."


# -- analysis code: flame_lab's flame.star API (star/) --------------------------------------
class StarError(FlameLabError):
    """Analysis code used the flame.star API in a way that cannot work."""

    default_hint = "Check the StarModel arguments; try the analysis with StarModelTester first."


class NoStarRuntime(StarError):
    """flame.star code ran where no FLAME node (real, sandbox or tester) hosts it."""

    default_hint = (
        "Try the analysis locally with flame.star.StarModelTester(...), "
        "or submit it so that FLAME nodes run it."
    )


# -- Jupyter server extension (server/) ------------------------------------------------------
class PassphraseRequired(KeyFileError):
    """The researcher's key is locked and no passphrase came with the request."""

    default_hint = "Enter the passphrase of your flame_lab identity (it is used once, not kept)."


class BadRequest(FlameLabError):
    """A request to flame_lab's REST API is malformed (not the analysis code itself)."""

    default_hint = "Send the JSON body the flame_lab REST API documents."


class ImageError(FlameLabError):
    """A master image is unknown, its package list is unknown, or it lacks what a draft needs."""

    default_hint = (
        "See `flame-lab image list` for the images your hub offers and "
        "`flame-lab image check DRAFT` for what your analysis needs; choose one with --image."
    )
