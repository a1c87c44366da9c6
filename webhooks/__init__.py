"""The GitHub App's web entry: a Flask app that verifies, routes and enqueues webhook deliveries."""

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
