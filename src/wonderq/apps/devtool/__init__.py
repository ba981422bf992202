"""The dev tool (port 3210): :mod:`.app` (its endpoints and the dashboard's API),
:mod:`.sampling` (the history of every queue's counts), ``static/`` (the
dashboard: plain HTML, JavaScript and CSS, no build step)."""

from wonderq.apps.devtool.app import create_app

__all__ = ["create_app"]
