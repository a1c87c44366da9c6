"""The GitHub App's web entry: a Flask app that verifies, routes and enqueues webhook deliveries."""

from .intake import create_app
from .settings import ServerConfig

__all__ = ["ServerConfig", "create_app"]
