"""Cross-cutting helpers every part of rlm-bot uses: secrets scrubbing (secrets.py), text that is
safe to encode and write (text.py), the one retry policy (retry.py), `StrEnum` (enums.py), and the
set-up every command shares: logging with redaction (logging.py, logcontext.py), the `.env` reader
(envfile.py), the stop signals (signals.py), the installed version (version.py), waiting on a descriptor of any number (waiting.py). Imports nothing else of bot.*, so the engine, the job
store and the front ends can all depend on it."""
