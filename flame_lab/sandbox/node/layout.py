"""Where one sandbox node keeps its things: the node's own folder under the sandbox home.

```
<home>/nodes/<name>/
    secrets.json     0600: node id, client id and secret, the identity file's passphrase
    identity.json    0600: the node's P-256 + Ed25519 keys (security.keys key file)
    public.json      the node's public identity, for researchers to trust
    trusted/         researchers' public identities this node accepts bundles from
    policy.toml      the data steward's rules (privacy.NodePolicy)
    budget.json      differential-privacy budget spent per researcher
    data/            the node's data (synthetic, or a copy of --node-data)
    runs/<id>/       one folder per analysis: code/ (verified build), work/ (private)
    agent.json       the agent's memory of each analysis (approved bundle hash, run state)
    agent.pid, agent.url, agent.ready   the running agent: pid, hub URL, served the hub once
```
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_lab.errors import SandboxError
from flame_lab.security.keys import PublicIdentity


@dataclass(frozen=True)
class NodeFolder:
    root: Path

    @classmethod
    def of(cls, home: Path, name: str) -> NodeFolder:
        return cls(Path(home) / "nodes" / name)

    @property
    def name(self) -> str:
        return self.root.name

    secrets = property(lambda self: self.root / "secrets.json")
    identity = property(lambda self: self.root / "identity.json")
    public = property(lambda self: self.root / "public.json")
    trusted = property(lambda self: self.root / "trusted")
    policy = property(lambda self: self.root / "policy.toml")
    budget = property(lambda self: self.root / "budget.json")
    data = property(lambda self: self.root / "data")
    runs = property(lambda self: self.root / "runs")
    state = property(lambda self: self.root / "agent.json")
    pid = property(lambda self: self.root / "agent.pid")
    log = property(lambda self: self.root / "agent.log")
    ready = property(lambda self: self.root / "agent.ready")  # pid, once it served the hub
    hub_url = property(lambda self: self.root / "agent.url")  # the URL its agent talks to

    def read_secrets(self) -> dict[str, str]:
        try:
            return json.loads(self.secrets.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot read {self.secrets}: {exc}") from None

    def trusted_researchers(self) -> list[PublicIdentity]:
        """The researcher keys this node's admin has accepted (files in trusted/)."""
        found = []
        for path in sorted(self.trusted.glob("*.json")) if self.trusted.is_dir() else []:
            try:
                found.append(PublicIdentity.from_dict(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError):
                continue
        return found

    def read_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.state)
