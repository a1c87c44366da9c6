"""The local backend (embedded default): provider.py makes one sandbox per agent on this machine.

checkout/ gives each agent its own view of the pinned commit (a copy-on-write overlay over one
shared checkout, or a full copy); isolation/ confines the driver (bubblewrap, cgroups); env.py
builds the ready environment of `sandbox.setup`; roots.py decides where sandboxes live and removes
what killed rollouts left behind.
"""
