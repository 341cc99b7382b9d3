"""JupyterHub on one machine to try flame_lab with several people: no identity provider, every
user gets a private sandbox federation (their own FLAME Hub and nodes) in their own folder.

    FLAME_LAB_DEMO_PASSWORD=choose-one jupyterhub -f deploy/jupyterhub/local_demo_config.py

DummyAuthenticator accepts any user name with that password (or any password if unset), and
SimpleLocalProcessSpawner runs every server as the hub's own system user: a demo, never a
production setup (use jupyterhub_config.py with a real FLAME login for that).
"""

import os
import sys

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

HOMES = os.environ.get("FLAME_LAB_DEMO_HOMES", "/tmp/flame-lab-demo")  # noqa: S108 (a demo)

c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ.get('FLAME_LAB_DEMO_PORT', '8000')}"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
if os.environ.get("FLAME_LAB_DEMO_PASSWORD"):  # (JupyterHub >= 5.3 warns: a demo, so be it)
    c.DummyAuthenticator.password = os.environ["FLAME_LAB_DEMO_PASSWORD"]

c.JupyterHub.spawner_class = "simple"  # jupyterhub.spawner.SimpleLocalProcessSpawner
c.SimpleLocalProcessSpawner.home_dir_template = HOMES + "/{username}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.args = ["--ServerApp.jpserver_extensions=flame_lab=True"]
if os.geteuid() == 0:  # the servers run as the hub's user; Jupyter refuses root unless told
    c.Spawner.args.append("--allow-root")


def flame_lab_home(spawner) -> str:
    """Keys, records and the sandbox of this user, apart from everyone else's."""
    return os.path.join(spawner.home_dir, ".flame-lab")


# The sandbox profile is the default: each server starts its own sandbox on first use.
c.Spawner.environment = {"FLAME_LAB_HOME": flame_lab_home}
