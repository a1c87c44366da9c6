"""`python -m action`: the step action.yml runs."""

from __future__ import annotations

import gc

from .main import main

code = main()
# Everything is written: skip the interpreter's last collections over litellm's object graph, which
# take seconds (far more on a loaded runner, past the 7.5 s a cancelled workflow allows).
gc.freeze()
raise SystemExit(code)
