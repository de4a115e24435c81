"""kdteach: knowledge distillation for regression, as a tested teaching package.

The package is built in layers, each importing only the ones before it: :mod:`kdteach.core`
(the machine learning), :mod:`kdteach.protocol` (the original's protocol and its stages),
:mod:`kdteach.lesson` (what the notebooks show); :mod:`kdteach.exercises` needs only the core
and the model names, and :mod:`kdteach.publish` (the tools that publish the notebooks) is
imported by nothing.
"""

__version__ = "0.1.0"
