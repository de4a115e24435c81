"""JupyterHub's configuration in tests/hub: a class of learners on loopback, for the test only.

The test (``class_hub.start_hub``) starts ``jupyterhub -f`` this file with the values
below in the environment: the ports, the run's folder, the learners, the shared cache,
the password and the test's API token. Everything listens on 127.0.0.1.

This is not a configuration for a real class (see deploy/jupyterhub/ for that): the
learners are not system users. SimpleLocalProcessSpawner runs every learner's server as
the user who runs the test, with ``HOME`` set to the learner's own folder, so the shared
cache is kept read-only by the test itself (``chattr +i`` as root, else no write bits).
What a real class shares is the same: the hub, a read-only lecturer's cache, and
``KDTEACH_CACHE=~/kdteach-cache:<shared>`` in every learner's kernel.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub defines get_config when it loads this file)

run = Path(os.environ["KDTEACH_HUB_RUN_DIR"])
learners = os.environ["KDTEACH_HUB_LEARNERS"].split()
bin_dir = Path(os.environ["KDTEACH_HUB_PYTHON"]).parent  # the virtualenv that runs the test

# where the hub, the proxy and the learners' servers listen
c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['KDTEACH_HUB_PORT']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ['KDTEACH_HUB_API_PORT']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['KDTEACH_HUB_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["KDTEACH_HUB_PROXY"]]
c.ConfigurableHTTPProxy.pid_file = str(run / "proxy.pid")
c.Spawner.ip = "127.0.0.1"

# the hub's state, all in the run's folder
c.JupyterHub.db_url = f"sqlite:///{run / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(run / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(run / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every learner's server
c.JupyterHub.cleanup_proxy = True

# who may log in: the learners, each with the class's password (the successor of
# DummyAuthenticator.password since JupyterHub 5.3)
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["KDTEACH_HUB_PASSWORD"]
c.Authenticator.allowed_users = set(learners)

# the test drives the hub and the learners' servers with this token
c.JupyterHub.services = [{"name": "kdteach-test", "api_token": os.environ["KDTEACH_HUB_TOKEN"]}]
c.JupyterHub.load_roles = [{
    "name": "kdteach-test",
    "scopes": ["admin:users", "admin:servers", "access:servers"],
    "services": ["kdteach-test"],
}]

# each learner's server: their own home folder, the lessons' settings, the shared cache
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(run / "home" / "{username}")
c.Spawner.notebook_dir = str(run / "home" / "{username}")
c.Spawner.cmd = [str(bin_dir / "jupyterhub-singleuser")]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []  # CI runs as root
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 180  # a busy 2-core machine starting three servers at once
c.Spawner.http_timeout = 180
c.Spawner.environment = {
    # read from the learner's own folder, then the lecturer's; write to the learner's
    "KDTEACH_CACHE": f"~/kdteach-cache{os.pathsep}{os.environ['KDTEACH_HUB_SHARED_CACHE']}",
    "KDTEACH_PROFILE": "quick",
    "KDTEACH_DEVICE": "cpu",
    "OMP_NUM_THREADS": "1",
    # marks every process of the run, so that the test can tell none is left behind
    "KDTEACH_HUB_MARK": os.environ["KDTEACH_HUB_MARK"],
}
