"""Cross-cutting helpers every part of rlm-bot uses: secrets scrubbing (secrets.py), text that is
safe to encode and write (text.py), the one retry policy (retry.py). Imports nothing else of bot.*,
so the engine, the job store and the front ends can all depend on it."""
