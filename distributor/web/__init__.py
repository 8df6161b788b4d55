"""The public web app: newsroom pages, feeds, and the unsubscribe endpoint (RFC 8058).

``create_app(settings)`` builds it; every absolute URL comes from ``settings.site_url``.
"""

from __future__ import annotations

from distributor.web.app import create_app

__all__ = ["create_app"]
