"""`flame-lab lab` and `flame-lab demo`: the main job, in a browser or in a terminal."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from flame_lab import config
from flame_lab.errors import KeyFileMissing

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mean_age.py"


def _ensure_identity(interactive: bool) -> Any:
    """A researcher without a key is offered one (asked for a passphrase, or given one in
    FLAME_LAB_PASSPHRASE), not an error. The new identity is returned (None when one was
    there), so that nobody is asked for the passphrase they have just chosen."""
    path = config.identity_file()
    if path.exists():
        return None
    if not interactive and not os.environ.get("FLAME_LAB_PASSPHRASE"):
        raise KeyFileMissing(f"no flame_lab identity at {path}")
    from flame_lab.newpassphrase import new_passphrase
    from flame_lab.security.keyid import display
    from flame_lab.security.keys import Identity, save_identity

    print(f"No flame_lab identity yet: creating one at {path}.")
    identity = Identity.generate()
    save_identity(path, identity, new_passphrase())
    print(f"Your key id: {display(identity.key_id)}")
    return identity


def _notebook_dir(given: str | None) -> Path:
    if given:
        return Path(given).expanduser().resolve()
    here = Path.cwd() / "notebooks"
    return here if here.is_dir() else Path.cwd()


def _lab(args: argparse.Namespace) -> int:
    from flame_lab.sandbox import daemon

    _ensure_identity(sys.stdin.isatty())
    running = daemon.up()
    print(f"sandbox federation at {running.url} (stop it with `flame-lab sandbox down`)")
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    folder = _notebook_dir(args.notebook_dir)
    argv = [jupyter, "lab", f"--notebook-dir={folder}"]
    start = folder / "01-getting-started.ipynb"
    if start.exists():
        argv.append(str(start))  # Jupyter reads a relative file path from the current folder
    if os.geteuid() == 0:
        argv.append("--allow-root")
    if args.no_browser:
        argv.append("--no-browser")
    argv += args.jupyter_args
    sys.stdout.flush()
    os.execv(jupyter, argv)  # noqa: S606 - the user's own Jupyter, no shell


def _demo(args: argparse.Namespace) -> int:
    from flame_lab.cli.analyses import Progress
    from flame_lab.draft import Draft
    from flame_lab.federation import connect
    from flame_lab.sandbox import daemon
    from flame_lab.security.keys import get_passphrase, load_identity

    identity = _ensure_identity(sys.stdin.isatty())
    if identity is None:  # asked once, used for signing and for opening the result
        identity = load_identity(config.identity_file(), get_passphrase())
    was_running = not config.active_profile().is_sandbox or daemon.status()["running"]
    fed = connect()
    print(f"federation {fed.name} at {fed.hub_url}: " + ", ".join(n.name for n in fed.nodes()))
    run = fed.submit(Draft.from_path(EXAMPLE), name="flame-lab demo: mean age", identity=identity)
    print(f"submitted {run.id}")
    run.wait(timeout=args.timeout, on_change=Progress(sys.stdout))
    result = run.result(identity=identity)
    print(f"decrypted result: mean age {result['mean_age']:.2f} over {result['n']} patients")
    if not was_running:
        print("The sandbox federation keeps running; stop it with `flame-lab sandbox down`.")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser("lab", help="start the sandbox and JupyterLab on the notebooks")
    lab.add_argument("notebook_dir", nargs="?", default=None, help="default: ./notebooks")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("jupyter_args", nargs=argparse.REMAINDER, help="passed on to jupyter lab")
    lab.set_defaults(func=_lab)

    demo = subparsers.add_parser("demo", help="run the getting-started analysis headless")
    demo.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the result (default: 120)"
    )
    demo.set_defaults(func=_demo)
