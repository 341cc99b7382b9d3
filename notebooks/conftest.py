"""The example notebooks run under nbval against one sandbox federation started for them.

The sandbox starts when the first notebook cell is about to run (so a run of plain `.py`
tests never pays for it) in a temporary FLAME_LAB_HOME holding a researcher identity; the
notebook kernels inherit that home and FLAME_LAB_PASSPHRASE. It stops when the session ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent
#: Unlocks the throwaway identity of the notebook runs; never shown by any notebook.
PASSPHRASE = "example notebooks, throwaway identity"
#: flame_lab's folder variables that would point a kernel somewhere other than the test home.
_CLEARED = (
    "FLAME_LAB_CONFIG_DIR",
    "FLAME_LAB_KEYS_DIR",
    "FLAME_LAB_SANDBOX_DIR",
    "FLAME_LAB_DATA_DIR",
    "FLAME_LAB_IDENTITY",
    "FLAME_LAB_PROFILE",
    "FLAME_LAB_CORE_URL",
    "FLAME_LAB_AUTH_URL",
    "FLAME_LAB_STORAGE_URL",
)


class NotebookSandbox:
    """A temporary researcher home with an identity and a running sandbox, for the kernels."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.saved_env: dict[str, str | None] = {}

    @property
    def started(self) -> bool:
        return self.root is not None

    def _setenv(self, name: str, value: str | None) -> None:
        self.saved_env.setdefault(name, os.environ.get(name))
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

    def start(self) -> None:
        from flame_lab import config
        from flame_lab.sandbox import daemon
        from flame_lab.security.keys import Identity, save_identity

        self.root = Path(tempfile.mkdtemp(prefix="flame-lab-notebooks-"))
        home = self.root / "home"
        for name in _CLEARED:
            self._setenv(name, None)
        self._setenv("FLAME_LAB_HOME", str(home))
        self._setenv("FLAME_LAB_PASSPHRASE", PASSPHRASE)
        self._setenv("IPYTHONDIR", str(self.root / "ipython"))
        save_identity(config.identity_file(), Identity.generate(), PASSPHRASE)
        daemon.up(config.sandbox_dir())

    def stop(self) -> None:
        if self.root is None:
            return
        from flame_lab.sandbox import daemon

        try:
            daemon.down(self.root / "home" / "sandbox")
        finally:
            for name, value in self.saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self.saved_env.clear()
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


_SANDBOX = NotebookSandbox()


def _is_notebook_cell(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb" and NOTEBOOKS in item.path.parents


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first notebook's kernel starts: the sandbox and the environment it inherits."""
    if _is_notebook_cell(item) and not _SANDBOX.started:
        _SANDBOX.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SANDBOX.stop()
