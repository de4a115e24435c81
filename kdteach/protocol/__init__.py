"""The original notebook's protocol on the core: settings and names, where every random
number comes from, the stage table, the experiment that runs a stage, the cache and the
typed results. Imports only :mod:`kdteach.core`."""
