"""`python -m action`: the step action.yml runs."""

from __future__ import annotations

from .main import main

raise SystemExit(main())
