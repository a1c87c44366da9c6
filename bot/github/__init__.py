"""The GitHub client layer, shared by the App (webhooks/) and the Action (action/): the REST API
with auth and retries (api.py, auth.py, failure.py), commands and permissions, the request's
context (request_context.py) and `.github/rlm.yml` (repo_config.py), the PR writer (deliver.py,
pull_request.py), the live status comment (reporter.py, status.py) and every user-facing sentence
(messages.py). It imports neither the job store nor webhooks/, and nothing here imports Flask.
"""
