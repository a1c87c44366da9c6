"""The Daytona backend: provider.py makes one Daytona sandbox per agent; client.py talks to the
platform (retries, labels, reaping); transport.py carries the REPL protocol over a session
command; env.py builds the ready environment as a snapshot."""
