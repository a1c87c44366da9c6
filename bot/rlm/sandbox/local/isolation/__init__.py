"""What confines a local sandbox's driver: bubblewrap namespaces (bwrap.py) and cgroup caps
(cgroups.py); and setup's own network namespace, outbound only (setup_network.py)."""
