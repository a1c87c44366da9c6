"""The GitHub Action entry point: the rollout inside a workflow run (see action.yml, docs/action.md)."""
