"""The click commands behind the ``pyro-vae`` console script, installed as ``pyro_vae.cli``.

A thin layer: each command parses options into a :class:`pyro_vae.Config` or a call of the Python
API, and ``main`` turns every user error into one line on stderr and a non-zero exit.
"""
