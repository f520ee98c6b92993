"""The HTTP API (FastAPI): ``/v1`` orders, documents, actions and stats; ``/healthz``, ``/metrics``, ``/docs``; and
the dashboard at ``/dashboard``.

Run it with::

    uvicorn --factory starter.api:create_default_app --host 127.0.0.1 --port 8000

Configuration comes from ``ICPFLOW_*`` variables (``models.settings.Settings`` and ``starter.api.config``).
"""

from starter.api.app import create_app, create_default_app

__all__ = ["create_app", "create_default_app"]
