"""The REST service (`facefind serve`): FastAPI over the library, one route per CLI command."""

from .app import create_app

__all__ = ["create_app"]
