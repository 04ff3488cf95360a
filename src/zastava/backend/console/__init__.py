"""The web console of the reference backend (``/ui``): inventory, drift, admission, health, simulation.

Server-rendered HTML (Jinja2 templates, autoescaped) with our own small stylesheet and script, charts drawn as
inline SVG on the server: no front-end framework, no build step, no third-party file served, and a strict
Content-Security-Policy (``script-src 'self'``, no inline script or style).
"""

from .app import ConsoleApp

__all__ = ["ConsoleApp"]
