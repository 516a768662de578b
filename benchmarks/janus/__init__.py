"""Janus 1.1.2 (Debian's `janus`) as the C reference for the side-by-side benchmark.

- `config/`: our own Janus configuration (loopback, ICE-lite, VideoRoom only, HTTP API only).
- `launcher`: the network namespace recipe and `running_janus(workdir)`.
- `client`: the Janus HTTP API / VideoRoom client the bots use in place of our protocol.
"""
