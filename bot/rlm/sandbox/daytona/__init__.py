"""The Daytona backend: provider.py makes one Daytona sandbox per agent (sandbox.py); client.py
talks to the platform (retries, labels, reaping); transport.py carries the REPL protocol over a
session command; env.py builds the ready environment as a snapshot.

Only this file is imported without the Daytona SDK (by the sandbox surface and `rlm run`'s checks).
"""

MISSING_KEY = (
    "sandbox.backend is 'daytona' but DAYTONA_API_KEY is not set; export it (or put it in the "
    "--env-file you pass), or use --sandbox local."
)
