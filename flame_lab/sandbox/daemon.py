"""Start, stop and describe a sandbox federation living in one home folder.

``up`` provisions a fresh home once (researcher account, nodes with their key files and
client secrets, an approved project), then runs the hub detached (its own session, output to
``hub.log``) and returns once it answers. A second ``up`` reuses a running hub; stale pid files
left by a crash are detected and replaced. State lives in SQLite and blobs, so it survives.

Restart is recovery: the hub's port is kept in ``sandbox.json`` and reused by every later
``up``, so kernels and agents that knew the old URL reach the new hub without a reconnect. If
that port was taken meanwhile, the hub gets another and every agent still pointing at the old
URL is restarted; ``up`` returns only once each agent has served the hub it just started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flame_lab import config
from flame_lab.errors import FlameLabError, SandboxError
from flame_lab.limits import ResourceLimits
from flame_lab.privacy import NodePolicy, dump_policy
from flame_lab.sandbox.hub.app import STATE_FILE
from flame_lab.sandbox.hub.provision import NodeSeed, Provisioned, node_names, provision
from flame_lab.sandbox.hub.store import Store
from flame_lab.sandbox.node import synthetic
from flame_lab.sandbox.node.datasets import NodeData
from flame_lab.sandbox.node.layout import NodeFolder, PeerPin
from flame_lab.security import keys

PID_FILE = "hub.pid"
LOG_FILE = "hub.log"
INFO_FILE = "sandbox.json"  # ids and names only; no secrets
RESEARCHER_FILE = "researcher.json"  # 0600: user name and password
ADMIN_FILE = "admin.json"  # 0600: the sandbox admin's user name and password
HUB_MODULE = "flame_lab.sandbox.hub"
NODE_MODULE = "flame_lab.sandbox.node"


@dataclass(frozen=True)
class Running:
    """A hub process that answers: its pid and base URL."""

    pid: int
    url: str


def home_dir(home: Path | str | None = None) -> Path:
    return Path(home).expanduser() if home else config.sandbox_dir()


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file readable only by its owner (created 0600, never briefly wider)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


# -- provisioning --------------------------------------------------------------------------
def is_initialised(home: Path) -> bool:
    return (home / INFO_FILE).exists()


def initialise(
    home: Path, nodes: int = 3, *, node_data: dict[str, Path] | None = None
) -> Provisioned:
    """Create the hub's starting records and every node's identity, secrets, policy and data."""
    if nodes < 2:
        raise SandboxError(
            "a sandbox needs at least 2 nodes (one site and the aggregator)",
            hint="Use `--nodes 3` (the default) or more.",
        )
    _private_dir(home)
    names = {s.name for s in node_names(nodes)}
    for name, folder in (node_data or {}).items():
        if name not in names:
            raise SandboxError(
                f"--node-data names an unknown node {name!r}",
                hint="Nodes of this sandbox: " + ", ".join(sorted(names)),
            )
        try:
            NodeData.load(folder)
        except FlameLabError as exc:
            raise SandboxError(f"cannot use {folder} as {name}'s data: {exc.message}") from None
    identities = {seed.name: keys.NodeIdentity.generate() for seed in node_names(nodes)}
    seeds = [
        NodeSeed(s.name, s.type, identities[s.name].public.hub_public_key)
        for s in node_names(nodes)
    ]
    store = Store(home)
    try:
        done = provision(store, seeds)
    finally:
        store.close()
    node_info = []
    for node in done.nodes:
        folder = _private_dir(home / "nodes" / node.name)
        passphrase = secrets.token_urlsafe(24)
        _write_private(
            folder / "secrets.json",
            {
                "nodeId": node.id,
                "clientId": node.client_id,
                "clientSecret": node.client_secret,
            },
        )
        # the key's passphrase is kept apart from the key (not in the node's folder)
        NodeFolder(folder).write_passphrase(passphrase)
        identity_file = folder / "identity.json"
        if identity_file.exists():
            identity_file.unlink()
        # Argon2id: as strong a KDF, but cheaper than scrypt for dozens of sandbox nodes
        keys.save_node_identity(identity_file, identities[node.name], passphrase, kdf="argon2id")
        (folder / "public.json").write_text(
            json.dumps(identities[node.name].public.to_dict(), indent=2), encoding="utf-8"
        )
        _provision_node(
            NodeFolder(folder), node.type, (node_data or {}).get(node.name), not node_data
        )
        node_info.append(
            {"id": node.id, "name": node.name, "type": node.type, "clientId": node.client_id}
        )
    _write_private(home / RESEARCHER_FILE, {"username": done.username, "password": done.password})
    _write_private(
        home / ADMIN_FILE, {"username": done.admin_username, "password": done.admin_password}
    )
    info = {
        "hubId": f"sandbox-{secrets.token_hex(16)}",
        "projectId": done.project_id,
        "masterImageId": done.master_image_id,
        "realmId": done.realm_id,
        "username": done.username,
        "nodes": node_info,
    }
    (home / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    provision_trust(home)
    return done


def provision_trust(home: Path) -> None:
    """What each node's admin would exchange out of band: the hub's identity, and every peer
    node's public identity from its own public.json (never from the hub's node records)."""
    info = _read_json(home / INFO_FILE) or {}
    if not info.get("hubId"):
        info["hubId"] = f"sandbox-{secrets.token_hex(16)}"
        (home / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    pins = []
    for node in info.get("nodes", []):
        folder = NodeFolder.of(home, node["name"])
        try:
            public = json.loads(folder.public.read_text(encoding="utf-8"))
            pins.append(
                PeerPin(node["id"], node["name"], keys.NodePublicIdentity.from_dict(public))
            )
        except (OSError, ValueError, FlameLabError):
            continue  # a node without a readable public identity is not pinned: refused
    for node in info.get("nodes", []):
        folder = NodeFolder.of(home, node["name"])
        if not folder.root.is_dir():
            continue
        folder.move_passphrase_out()  # a sandbox made before passphrases left secrets.json
        if not folder.hub.exists():
            folder.hub.write_text(json.dumps({"hubId": info["hubId"]}), encoding="utf-8")
        if not folder.peers.exists():
            folder.write_pins([pin for pin in pins if pin.node_id != node["id"]])


def _provision_node(
    folder: NodeFolder, node_type: str, user_data: Path | None, all_synthetic: bool
) -> None:
    """A node's policy (the sandbox approves verified code by itself) and its data. Only a node
    that sees nothing but synthetic data may run analyses unconfined where bubblewrap is
    missing (logged); a node with --node-data, and the aggregator beside one, never do."""
    synthetic_only = user_data is None and (node_type == "default" or all_synthetic)
    limits = ResourceLimits(allow_unconfined=synthetic_only)
    dump_policy(NodePolicy(approval="auto", limits=limits), folder.policy)
    _private_dir(folder.trusted)
    if node_type != "default":
        return
    if user_data is not None:
        shutil.copytree(user_data, folder.data, symlinks=False)
    else:
        synthetic.write(synthetic.generate(folder.name), folder.data)


# -- processes ------------------------------------------------------------------------------
def set_profile(home: Path | str | None, profile: str) -> list[str]:
    """Set every node's release profile ("flame" | "strict") in its policy.toml; agents pick
    the change up before their next run. Returns the nodes changed."""
    from dataclasses import replace

    from flame_lab.privacy import load_policy

    changed = []
    for folder in _node_folders(home_dir(home)):
        if not folder.policy.exists():
            continue
        policy = load_policy(folder.policy)
        if policy.profile != profile:
            dump_policy(replace(policy, profile=profile), folder.policy)
            changed.append(folder.name)
    return changed


def set_switch(home: Path | str | None, name: str, value: bool) -> list[str]:
    """Set a node policy switch (``node_sealing``, ``image_environments``) on every node; the
    agents pick it up before their next run. Returns the nodes changed."""
    from dataclasses import replace

    from flame_lab.privacy import SWITCHES, load_policy

    if name not in SWITCHES:
        raise SandboxError(f"no node policy switch {name!r}", hint=f"One of {', '.join(SWITCHES)}.")
    changed = []
    for folder in _node_folders(home_dir(home)):
        if not folder.policy.exists():
            continue
        policy = load_policy(folder.policy)
        if getattr(policy, name) != value:
            dump_policy(replace(policy, **{name: value}), folder.policy)
            changed.append(folder.name)
    return changed


def _alive(pid: int, home: Path | None = None, node: str | None = None) -> bool:
    """The pid is a flame_lab process; with ``home`` (and ``node``), one this sandbox started
    for it: pids recycle fast (pid_max is often 32768), and a stale pid file must never make
    `down` stop another sandbox's hub or agent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path(f"/proc/{pid}").exists():  # guard against a recycled pid
        args = command_line(pid)
        text = " ".join(args or [])
        if not ("flame_lab" in text or "flame-lab" in text):
            return False
        if home is not None and (node is not None or HUB_MODULE in args):
            return _option(args, "--home") == str(Path(home).resolve()) and (
                node is None or _option(args, "--node") == node
            )
    return True


EXEC_SETTLE_SECONDS = 2.0


def command_line(pid: int, settle: float = EXEC_SETTLE_SECONDS) -> list[str] | None:
    """A process's arguments (None: gone or a zombie). A process in the middle of exec shows
    an empty command line for a moment, and its spawner may look just then (`up` does, right
    after starting an agent): an empty one is read again until it fills or ``settle`` ends."""
    deadline = time.monotonic() + settle
    while True:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        if raw:
            return raw.decode(errors="replace").split("\0")
        if stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"]):
            return None
        if time.monotonic() > deadline:
            return []
        time.sleep(0.01)


def _option(args: list[str], name: str) -> str | None:
    """The value given to ``name`` on a command line (a path resolved), if any."""
    if name not in args[:-1]:
        return None
    value = args[args.index(name) + 1]
    return str(Path(value).resolve()) if name == "--home" else value


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a sandbox hub answers at ``url`` (its public root route)."""
    try:
        with urllib.request.urlopen(url + "/", timeout=timeout) as r:  # noqa: S310 (loopback URL)
            return json.loads(r.read()).get("service") == "flame_lab sandbox hub"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def running(home: Path | str | None = None) -> Running | None:
    """The hub serving this home, if one is alive and answering; stale files are removed."""
    home = home_dir(home)
    pid_text = (home / PID_FILE).read_text().strip() if (home / PID_FILE).exists() else ""
    state = _read_json(home / STATE_FILE)
    if not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if _alive(pid, home) and state and state.get("pid") == pid and answers(state["url"]):
        return Running(pid, state["url"])
    if not _alive(pid, home):
        for name in (PID_FILE, STATE_FILE):
            with contextlib.suppress(FileNotFoundError):
                (home / name).unlink()
    return None


def _node_folders(home: Path) -> list[NodeFolder]:
    info = _read_json(home / INFO_FILE) or {}
    return [NodeFolder.of(home, node["name"]) for node in info.get("nodes", [])]


def agent_pid(folder: NodeFolder) -> int | None:
    """The pid of the node's agent process, if it is alive."""
    try:
        text = folder.pid.read_text().strip()
    except (FileNotFoundError, OSError):
        text = ""
    home = folder.root.parent.parent
    return int(text) if text.isdigit() and _alive(int(text), home, folder.name) else None


def agent_url(folder: NodeFolder) -> str | None:
    """The hub URL the node's agent was started with (None if unknown)."""
    try:
        return folder.hub_url.read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, OSError):
        return None


def ensure_agents(home: Path, url: str) -> None:
    """Start every node agent that is not running (after `up`, or after one crashed), and
    restart every one that talks to another URL (a hub that had to move to a new port)."""
    folders = _node_folders(home)
    detached = [f for f in folders if agent_pid(f) is not None and agent_url(f) != url]
    if detached:
        stop_pids([pid for pid in map(agent_pid, detached) if pid is not None])
    for folder in folders:
        if agent_pid(folder) is not None:
            continue
        with contextlib.suppress(FileNotFoundError):
            folder.ready.unlink()
        argv = [sys.executable, "-u", "-m", NODE_MODULE, "--home", str(home.absolute())]
        proc = _spawn([*argv, "--node", folder.name, "--url", url], folder.root, folder.log)
        url_tmp = folder.hub_url.with_suffix(".spawned")
        url_tmp.write_text(url, encoding="utf-8")
        os.replace(url_tmp, folder.hub_url)
        pid_tmp = folder.pid.with_suffix(".spawned")
        pid_tmp.write_text(str(proc.pid))
        os.replace(pid_tmp, folder.pid)


def _forget_readiness(home: Path) -> None:
    """A new hub process: every agent must prove again that it serves it (ready files go)."""
    for folder in _node_folders(home):
        with contextlib.suppress(FileNotFoundError):
            folder.ready.unlink()


# -- the stable port ------------------------------------------------------------------------
def remembered_port(home: Path) -> int:
    """The port this sandbox's hub served last (0: none yet)."""
    port = (_read_json(home / INFO_FILE) or {}).get("port")
    return port if isinstance(port, int) and 0 < port < 65536 else 0


def _remember_port(home: Path, port: int) -> None:
    info = _read_json(home / INFO_FILE)
    if info is None or info.get("port") == port:
        return
    info["port"] = port
    tmp = home / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
    os.replace(tmp, home / INFO_FILE)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the hub could listen on ``port`` now (as tornado does, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


PORT_WAIT_SECONDS = 5.0  # a killed hub's listening socket may outlive it for a moment


def _choose_port(home: Path, asked: int) -> int:
    """The asked port, else the remembered one once it is free (a hub killed just now may
    still hold it briefly), else any (0): then `up` re-points the agents."""
    if asked:
        return asked
    kept = remembered_port(home)
    if not kept:
        return 0
    deadline = time.monotonic() + PORT_WAIT_SECONDS
    while not port_free(kept):
        if time.monotonic() > deadline:
            return 0
        time.sleep(0.05)
    return kept


def wait_for_agents(home: Path, timeout: float) -> None:
    """Return once every node agent has served the hub once: the federation is ready."""
    folders = _node_folders(home)
    limit = timeout + 1.5 * len(folders)  # big sandboxes start slowly
    deadline = time.monotonic() + limit
    for folder in folders:
        while not folder.ready.exists():
            pid = agent_pid(folder)
            if pid is None or time.monotonic() > deadline:
                what = (
                    "exited before it served the hub"
                    if pid is None
                    else f"did not serve the hub within {limit:.0f} s (is the machine busy?)"
                )
                raise SandboxError(
                    f"the node agent of {folder.name} {what}",
                    hint=f"Read {folder.log}; `flame-lab sandbox up` again retries.",
                )
            time.sleep(0.05)


def stop_agents(home: Path) -> None:
    """All agents at once: each may take a moment (it answers the signal after its current
    request to the hub), and a hundred of them one after another would add up."""
    folders = _node_folders(home)
    stop_pids([pid for pid in map(agent_pid, folders) if pid is not None])
    for folder in folders:
        for path in (folder.pid, folder.ready):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _spawn(argv: list[str], cwd: Path, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )


def up(
    home: Path | str | None = None,
    *,
    nodes: int = 3,
    port: int = 0,
    timeout: float = 30.0,
    node_data: dict[str, Path] | None = None,
) -> Running:
    """Start (or reuse) the sandbox hub and its node agents; return once the hub answers."""
    home = home_dir(home)
    current = running(home)
    if current is None:
        _wait_for_starting_hub(home, timeout)
        current = running(home)
    if current is not None:
        if node_data:
            raise SandboxError(
                "--node-data only applies when a sandbox is created",
                hint="Run `flame-lab sandbox reset` first, then `up --node-data ...`.",
            )
        ensure_agents(home, current.url)
        wait_for_agents(home, timeout)
        return current
    if not is_initialised(home):
        initialise(home, nodes, node_data=node_data)
    elif node_data:  # a stopped sandbox keeps the data it was created with: say so, do not ignore
        raise SandboxError(
            "--node-data only applies when a sandbox is created; this one exists (stopped)",
            hint="Run `flame-lab sandbox reset` first, then `up --node-data ...`.",
        )
    provision_trust(home)
    with contextlib.suppress(FileNotFoundError):
        (home / STATE_FILE).unlink()
    _forget_readiness(home)
    proc = _spawn(
        [
            *(sys.executable, "-m", HUB_MODULE, "--home", str(home.absolute())),
            *("--port", str(_choose_port(home, port))),
        ],
        home,
        home / LOG_FILE,
    )
    (home / PID_FILE).write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SandboxError(
                f"the sandbox hub exited with code {proc.returncode}",
                hint=f"Read {home / LOG_FILE}.",
            )
        state = _read_json(home / STATE_FILE)
        if state and state.get("pid") == proc.pid and answers(state["url"]):
            _remember_port(home, int(state["port"]))
            ensure_agents(home, state["url"])
            wait_for_agents(home, timeout)
            return Running(proc.pid, state["url"])
        time.sleep(0.05)
    stop_pid(proc.pid)
    raise SandboxError(
        f"the sandbox hub did not answer within {timeout:.0f} s", hint=f"Read {home / LOG_FILE}."
    )


def _wait_for_starting_hub(home: Path, timeout: float) -> None:
    """A live hub process that does not answer yet may be starting: give it time, never a twin."""
    pid_text = (home / PID_FILE).read_text().strip() if (home / PID_FILE).exists() else ""
    if not pid_text.isdigit() or not _alive(int(pid_text), home):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running(home) is not None or not _alive(int(pid_text), home):
            return
        time.sleep(0.05)
    raise SandboxError(
        f"the sandbox hub (pid {pid_text}) runs but does not answer",
        hint=f"Read {home / LOG_FILE}, then `flame-lab sandbox down` and `up` again.",
    )


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: the hub commits before answering, so both are safe."""
    stop_pids([pid], timeout)


def stop_pids(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM to each, wait for all together, then SIGKILL whoever is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    left = set(pids)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        left = {pid for pid in left if _running(pid)}
        if left:
            time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously: callers (ensure_agents) must not see them alive
    deadline = time.monotonic() + 5.0
    while left and time.monotonic() < deadline:
        left = {pid for pid in left if _running(pid)}
        if left:
            time.sleep(0.02)


def _running(pid: int) -> bool:
    """Not exited yet (a child of ours that exited is reaped here; another's zombie counts
    as exited)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def down(home: Path | str | None = None) -> bool:
    """Stop the node agents and the hub of ``home``; True if the hub was running."""
    home = home_dir(home)
    stop_agents(home)
    pid_file = home / PID_FILE
    was_running = False
    if pid_file.exists() and pid_file.read_text().strip().isdigit():
        pid = int(pid_file.read_text().strip())
        if _alive(pid, home):
            stop_pid(pid)
            was_running = True
    for name in (PID_FILE, STATE_FILE):
        with contextlib.suppress(FileNotFoundError):
            (home / name).unlink()
    return was_running


def reset(home: Path | str | None = None) -> None:
    """Stop the hub and delete every record, file and key of this sandbox."""
    home = home_dir(home)
    down(home)
    if home.exists():
        shutil.rmtree(home)


def status(home: Path | str | None = None) -> dict[str, Any]:
    """Everything a FLAME client needs to use the sandbox (includes the local password)."""
    home = home_dir(home)
    current = running(home)
    info = _read_json(home / INFO_FILE) or {}
    researcher = _read_json(home / RESEARCHER_FILE) or {}
    admin = _read_json(home / ADMIN_FILE) or {}
    url = current.url if current else None
    return {
        "home": str(home),
        "initialised": bool(info),
        "running": current is not None,
        "pid": current.pid if current else None,
        "url": url,
        "port": remembered_port(home) or None,
        "coreUrl": f"{url}/core" if url else None,
        "authUrl": f"{url}/auth" if url else None,
        "storageUrl": f"{url}/storage" if url else None,
        "username": researcher.get("username"),
        "password": researcher.get("password"),
        "credentialsFile": str(home / RESEARCHER_FILE),
        # the sandbox's admin: sees and changes every record (other researchers' analyses,
        # nodes, accounts), as a Hub operator does
        "admin": {
            "username": admin.get("username"),
            "password": admin.get("password"),
            "credentialsFile": str(home / ADMIN_FILE),
        },
        "projectId": info.get("projectId"),
        "hubId": info.get("hubId"),
        "nodes": [
            {
                **node,
                "secretsFile": str(home / "nodes" / node["name"] / "secrets.json"),
                "identityFile": str(home / "nodes" / node["name"] / "identity.json"),
                "passphraseFile": str(NodeFolder.of(home, node["name"]).passphrase_file),
                "publicIdentityFile": str(home / "nodes" / node["name"] / "public.json"),
                **_agent_status(NodeFolder.of(home, node["name"]), url),
            }
            for node in info.get("nodes", [])
        ],
    }


def _agent_status(folder: NodeFolder, hub_url: str | None) -> dict[str, Any]:
    """Running, and attached: running with the URL of the hub that answers now."""
    pid = agent_pid(folder)
    url = agent_url(folder) if pid is not None else None
    return {
        "agentRunning": pid is not None,
        "agentPid": pid,
        "agentUrl": url,
        "agentAttached": pid is not None and hub_url is not None and url == hub_url,
    }


def foreground(
    home: Path | str | None = None,
    *,
    nodes: int = 3,
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the hub in this process (``sandbox up --foreground``) until interrupted."""
    from flame_lab.sandbox.hub.app import serve

    home = home_dir(home)
    if running(home) is not None:
        raise SandboxError(
            f"a sandbox hub already runs for {home}", hint="Stop it with `flame-lab sandbox down`."
        )
    if not is_initialised(home):
        initialise(home, nodes)
    provision_trust(home)
    (home / PID_FILE).write_text(str(os.getpid()))

    def ready(url: str) -> None:
        _remember_port(home, int(url.rsplit(":", 1)[1]))
        ensure_agents(home, url)
        if on_ready is not None:
            on_ready(url)

    _forget_readiness(home)
    try:
        serve(home, _choose_port(home, port), on_ready=ready)
    finally:
        stop_agents(home)
        for name in (PID_FILE, STATE_FILE):
            with contextlib.suppress(FileNotFoundError):
                (home / name).unlink()


# -- disk -------------------------------------------------------------------------------------
def gc(home: Path | str | None = None) -> dict[str, int]:
    """Reclaim the disk deleted analyses held: unreferenced blobs, builds, temporary files at
    the hub, and the run folders of analyses a node has finished (not a sealed result it has
    yet to upload). Safe beside a running hub
    (files younger than gc.OUT_OF_PROCESS_GRACE stay; the hub reclaims on delete itself)."""
    from flame_lab.sandbox.hub import gc as hub_gc

    home = home_dir(home)
    if not is_initialised(home):
        raise SandboxError(f"no sandbox in {home}", hint="Create one: `flame-lab sandbox up`.")
    before = hub_gc.disk_usage(home)
    grace = hub_gc.OUT_OF_PROCESS_GRACE if running(home) is not None else 0.0
    store = Store(home)
    try:
        done = hub_gc.collect(store, grace=grace).to_dict()
        done["compacted"] = int(hub_gc.compact(store))
    finally:
        store.close()
    runs = 0
    for folder in _node_folders(home):
        state = folder.read_state()
        for run in sorted(folder.runs.iterdir()) if folder.runs.is_dir() else []:
            entry = state.get(run.name, {})
            # a sealed result the hub has not taken yet (its outbox) stays until it has
            if entry.get("phase") in ("executed", "failed", "rejected") and not entry.get("outbox"):
                shutil.rmtree(run, ignore_errors=True)
                runs += 1
    return {**done, "runs": runs, "freed": max(0, before - hub_gc.disk_usage(home))}


# -- accounts ---------------------------------------------------------------------------------
def _accounts(home: Path | str | None, action: Callable[[Store], Any]) -> Any:
    from flame_lab.sandbox.hub.wire import ApiError

    home = home_dir(home)
    if not is_initialised(home):
        raise SandboxError(f"no sandbox in {home}", hint="Create one: `flame-lab sandbox up`.")
    store = Store(home)
    try:
        return action(store)
    except ApiError as exc:
        raise SandboxError(exc.message) from None
    finally:
        store.close()


def add_user(home: Path | str | None, name: str, password: str | None = None) -> str:
    """Another researcher account of this sandbox (e.g. for a JupyterHub); returns its password."""
    from flame_lab.sandbox.hub.auth import add_researcher

    return _accounts(home, lambda store: add_researcher(store, name, password))


def add_oauth_client(home: Path | str | None, name: str, redirect_uri: str) -> Any:
    """A web application (e.g. JupyterHub) that logs researchers in by the authorization code."""
    from flame_lab.sandbox.hub.auth import add_oauth_client as add

    return _accounts(home, lambda store: add(store, name, redirect_uri))
