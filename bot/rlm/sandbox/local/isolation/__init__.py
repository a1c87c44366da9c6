"""What confines a local sandbox's driver: bubblewrap namespaces (bwrap.py) and cgroup caps (cgroups.py)."""
