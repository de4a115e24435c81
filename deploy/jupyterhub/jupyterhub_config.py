"""JupyterHub for a kdteach class: a starting configuration, to read and adapt.

README.md beside this file gives the steps around it: the Python environment, the
lecturer's shared cache, the learners' copy of the lessons and the nbgitpuller link.
Start the hub with ``jupyterhub -f /etc/jupyterhub/jupyterhub_config.py`` (as root, which
PAM and the spawners need to start servers as the learners).

What it sets up:

* learners log in with their own Unix account and password (PAM), if they belong to the
  class's Unix group; each learner's server runs as that learner;
* each server and its kernels are limited in memory and CPU (with SystemdSpawner);
* idle kernels, then idle servers, are stopped (``MappingKernelManager`` culling and the
  ``jupyterhub-idle-culler`` service);
* every kernel reads the lecturer's prepared cache, read-only, and caches a learner's own
  work in ``~/kdteach-cache`` (``KDTEACH_CACHE``), with the lessons' settings.

The values to change for a class are in the first block.
"""

import os
import sys

c = get_config()  # noqa: F821 (JupyterHub defines get_config when it loads this file)

# ---------------------------------------------------------------- change these for a class

# The Python environment with kdteach, JupyterLab, jupyterhub, jupyterhub-idle-culler and
# nbgitpuller (and jupyterhub-systemdspawner for SPAWNER = "systemd"): README.md, step 1.
ENV = "/opt/kdteach/venv"
# The lecturer's cache, filled with `python -m kdteach prepare --profile full` and
# read-only for the learners (README.md, step 2).
SHARED_CACHE = "/srv/kdteach/cache"
# Who may log in: the members of this Unix group; the lecturers are the hub's admins.
CLASS_GROUP = "kdteach-class"
LECTURERS = {"lecturer"}
# "systemd": each learner's server in a systemd unit of its own, with the memory and CPU
# limits below enforced and the shared cache mounted read-only (needs systemd and
# `pip install jupyterhub-systemdspawner`). "local": a plain process per learner, as the
# learner (LocalProcessSpawner, part of JupyterHub): no limits are enforced, and the shared
# cache is read-only only through its file permissions.
SPAWNER = "systemd"
# Memory and CPU for each learner (server and kernels together). Measured by the hub test
# (tests/hub, quick profile, lessons 00 and 01 open at once): about 1.1 GB resident, of which
# about 440-460 MB for each lesson's kernel and 165 MB for the server. 2G leaves room for a
# third lesson or for a retrain from the sliders; a kernel over the limit is ended by the
# system and JupyterLab says that it died.
MEMORY_LIMIT = "2G"
CPU_LIMIT = 1.0  # in cores; the lessons' kernels use one thread (OMP_NUM_THREADS=1)
# Idle culling: a kernel that ran nothing for KERNEL_IDLE_S is shut down (its tab says the
# kernel is gone; rerunning the lesson loads everything from the cache again in seconds), and
# a server with no activity for SERVER_IDLE_S is stopped (the learner's files stay; logging
# in again starts a new server).
KERNEL_IDLE_S = 45 * 60
SERVER_IDLE_S = 90 * 60

# ---------------------------------------------------------------- the hub itself

# Listen on loopback behind a reverse proxy that terminates TLS (nginx, Caddy, Apache);
# for TLS here instead: c.JupyterHub.bind_url = "https://:443" with ssl_cert and ssl_key.
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"

# Who logs in: accounts of this machine (PAM), members of the class's group only.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {CLASS_GROUP}
c.Authenticator.admin_users = LECTURERS

# ---------------------------------------------------------------- each learner's server

c.Spawner.cmd = [f"{ENV}/bin/jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.mem_limit = MEMORY_LIMIT
c.Spawner.cpu_limit = CPU_LIMIT
c.Spawner.args = [
    # kernels idle (nothing run) this long are shut down, tab open or not: each holds
    # some 450 MB
    f"--MappingKernelManager.cull_idle_timeout={KERNEL_IDLE_S}",
    "--MappingKernelManager.cull_interval=300",
    "--MappingKernelManager.cull_connected=True",
]


def learner_cache(spawner) -> str:
    """``KDTEACH_CACHE`` for one learner: their own folder first (where kdteach writes what
    they train), then the lecturer's (read-only, passed over quietly when kdteach writes)."""
    home = os.path.expanduser(f"~{spawner.user.name}")
    return f"{home}/kdteach-cache{os.pathsep}{SHARED_CACHE}"


c.Spawner.environment = {
    "KDTEACH_CACHE": learner_cache,
    "KDTEACH_PROFILE": "full",  # the original notebook's protocol, as the cache was prepared
    "KDTEACH_DEVICE": "cpu",
    "OMP_NUM_THREADS": "1",  # one thread per kernel: many learners share the cores
}

if SPAWNER == "systemd":
    c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
    c.SystemdSpawner.readonly_paths = [SHARED_CACHE]  # read-only whatever its permissions
    c.SystemdSpawner.isolate_tmp = True  # a /tmp of each learner's own
    c.SystemdSpawner.disable_user_sudo = True
    c.SystemdSpawner.extra_paths = [f"{ENV}/bin"]
    c.SystemdSpawner.unit_extra_properties = {"RuntimeDirectoryPreserve": "no"}
elif SPAWNER == "local":
    c.JupyterHub.spawner_class = "localprocess"
else:
    raise ValueError(f"SPAWNER is 'systemd' or 'local', not {SPAWNER!r}")

# ---------------------------------------------------------------- idle servers

# jupyterhub-idle-culler, started and stopped by the hub: every --cull-every seconds it
# stops each server whose last activity (a request, a kernel running) is older than
# --timeout; --concurrency limits how many it asks the hub to stop at once.
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={SERVER_IDLE_S}",
                "--cull-every=300", "--concurrency=5"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "description": "see who is idle and stop their servers",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
