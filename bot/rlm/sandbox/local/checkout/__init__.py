"""An agent's checkout of the pinned commit, made one of two ways.

overlay.py: a copy-on-write view over one read-only checkout per commit (shared.py), mounted by
overlay_launch.py inside the sandbox, its patch read from the upper layer (upper_patch.py).
copies.py: a full copy per agent, where overlay mounts are impossible.
"""
