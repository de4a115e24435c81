"""deploy/jupyterhub/jupyterhub_config.py loads as JupyterHub loads it and sets up a class:
the shared cache behind each learner's own, idle culling with the scopes it needs, limits.

Fast, and part of the plain test run (no hub is started: tests/hub/test_hub.py does that).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from traitlets.config.loader import PyFileConfigLoader

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub"


def load_deploy_config():
    return PyFileConfigLoader("jupyterhub_config.py", path=str(DEPLOY)).load_config()


def test_each_learner_reads_the_shared_cache_after_their_own():
    config = load_deploy_config()
    env = config.Spawner.environment
    learner = SimpleNamespace(user=SimpleNamespace(name="root"))  # a user this machine has
    own, shared = env["KDTEACH_CACHE"](learner).split(os.pathsep)
    assert own == os.path.join(os.path.expanduser("~root"), "kdteach-cache")
    assert shared == "/srv/kdteach/cache"
    assert env["KDTEACH_PROFILE"] == "full" and env["OMP_NUM_THREADS"] == "1"
    assert config.SystemdSpawner.readonly_paths == [shared]


def test_idle_servers_and_kernels_are_culled_with_only_the_scopes_needed():
    config = load_deploy_config()
    (culler,) = config.JupyterHub.services
    assert culler["command"][1:3] == ["-m", "jupyterhub_idle_culler"]
    assert any(arg.startswith("--timeout=") for arg in culler["command"])
    (role,) = config.JupyterHub.load_roles
    assert role["services"] == [culler["name"]]
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers",
                                   "delete:servers"}
    assert any(arg.startswith("--MappingKernelManager.cull_idle_timeout=")
               for arg in config.Spawner.args)


def test_learners_log_in_as_themselves_with_limits():
    config = load_deploy_config()
    assert config.JupyterHub.authenticator_class == "pam"
    assert config.PAMAuthenticator.allowed_groups
    assert config.JupyterHub.spawner_class == "systemdspawner.SystemdSpawner"
    assert config.Spawner.mem_limit == "2G" and config.Spawner.cpu_limit == 1.0
