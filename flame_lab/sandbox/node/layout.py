"""Where one sandbox node keeps its things: the node's own folder under the sandbox home.

```
<home>/nodes/<name>/
    secrets.json     0600: node id, client id and secret (never the key's passphrase)
    identity.json    0600: the node's P-256 + Ed25519 keys (security.keys key file)
    public.json      the node's public identity, for researchers and peers to pin
    trusted/         researchers' public identities this node accepts bundles from
    peers.json       pinned identities of the other nodes (node id -> name, identity)
    hub.json         the identity of the hub this node serves (bundles must be bound to it)
    ledger.sqlite    the node's own approvals and executed run nonces (node.ledger)
    policy.toml      the data steward's rules (privacy.NodePolicy)
    budget.json      differential-privacy budget spent per researcher
    data/            the node's data (synthetic, or a copy of --node-data)
    runs/<id>/       one folder per analysis: code/ (verified build), work/ (private)
    agent.json       the agent's memory of each analysis (approved bundle hash, run state)
    agent.pid, agent.url, agent.ready   the running agent: pid, hub URL, served the hub once
```
The identity file's passphrase lives apart from the key, in ``<home>/keyring/<name>`` (0600 in
a 0700 folder): a copy of the node's folder does not carry it. A real node would keep it in
the OS keyring, systemd credentials or an HSM; the sandbox has only the disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_lab.errors import FlameLabError, SandboxError
from flame_lab.security.keys import NodePublicIdentity, PublicIdentity


@dataclass(frozen=True)
class PeerPin:
    """Another node's identity, as this node's admin received it out of band."""

    node_id: str
    name: str
    identity: NodePublicIdentity


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
    peers = property(lambda self: self.root / "peers.json")
    hub = property(lambda self: self.root / "hub.json")
    ledger = property(lambda self: self.root / "ledger.sqlite")
    policy = property(lambda self: self.root / "policy.toml")
    budget = property(lambda self: self.root / "budget.json")
    data = property(lambda self: self.root / "data")
    runs = property(lambda self: self.root / "runs")
    state = property(lambda self: self.root / "agent.json")
    pid = property(lambda self: self.root / "agent.pid")
    log = property(lambda self: self.root / "agent.log")
    ready = property(lambda self: self.root / "agent.ready")  # pid, once it served the hub
    hub_url = property(lambda self: self.root / "agent.url")  # the URL its agent talks to

    @property
    def passphrase_file(self) -> Path:
        return self.root.parent.parent / "keyring" / self.name

    def write_passphrase(self, passphrase: str) -> None:
        keyring = self.passphrase_file.parent
        keyring.mkdir(mode=0o700, parents=True, exist_ok=True)
        keyring.chmod(0o700)
        tmp = self.passphrase_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(passphrase)
        os.replace(tmp, self.passphrase_file)

    def read_passphrase(self) -> str:
        """The identity file's passphrase, from the keyring folder (never from secrets.json)."""
        try:
            text = self.passphrase_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SandboxError(
                f"cannot read node {self.name}'s key passphrase: {exc.strerror}",
                hint="`flame-lab sandbox up` moves an old sandbox's passphrases there.",
            ) from None
        if not text:
            raise SandboxError(f"node {self.name}'s key passphrase file is empty")
        return text

    def move_passphrase_out(self) -> None:
        """An older sandbox kept the passphrase in secrets.json, beside the key: move it."""
        try:
            secrets = json.loads(self.secrets.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(secrets, dict) or "identityPassphrase" not in secrets:
            return
        if not self.passphrase_file.exists():
            self.write_passphrase(str(secrets["identityPassphrase"]))
        del secrets["identityPassphrase"]
        tmp = self.secrets.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(secrets, fh, indent=2)
        os.replace(tmp, self.secrets)

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

    def peer_pins(self) -> dict[str, PeerPin]:
        """Pinned peer identities by node id; an unreadable pin is left out (so: refused)."""
        try:
            raw = json.loads(self.peers.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        pins: dict[str, PeerPin] = {}
        for node_id, item in raw.items() if isinstance(raw, dict) else ():
            try:
                pin = PeerPin(
                    str(node_id), str(item["name"]), NodePublicIdentity.from_dict(item["identity"])
                )
            except (ValueError, TypeError, KeyError, FlameLabError):
                continue
            pins[pin.node_id] = pin
        return pins

    def write_pins(self, pins: list[PeerPin]) -> None:
        data = {pin.node_id: {"name": pin.name, "identity": pin.identity.to_dict()} for pin in pins}
        _write_json(self.peers, data)

    def hub_identity(self) -> str:
        """The hub this node's admin registered it with; bundles must be signed for it."""
        try:
            hub = json.loads(self.hub.read_text(encoding="utf-8"))["hubId"]
        except (OSError, ValueError, TypeError, KeyError):
            hub = None
        if not isinstance(hub, str) or not hub:
            raise SandboxError(
                f"node {self.name} has no hub identity in {self.hub}",
                hint="Start the sandbox with `flame-lab sandbox up` (it provisions the file).",
            )
        return hub

    def read_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def write_state(self, state: dict[str, Any]) -> None:
        _write_json(self.state, state)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
