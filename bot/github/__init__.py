"""The GitHub side: app auth, REST calls, commands, permission check, the run flow, pull requests.

Shared by the GitHub App (webhooks/) and the GitHub Action (action/); nothing here imports Flask.
"""
