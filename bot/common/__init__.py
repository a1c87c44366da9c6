"""Cross-cutting pieces every part of rlm-bot shares (logging set-up, ...)."""
