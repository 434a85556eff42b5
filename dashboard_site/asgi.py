"""ASGI entry point: HTTP goes to Django, WebSockets to the realtime consumer.

Run with `daphne dashboard_site.asgi:application` (or `manage.py runserver`)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_site.settings")
from dashboard_site.request_threads import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()  # sets Django up before the consumer imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from dashboard_site.proxy import TrustedProxyMiddleware  # noqa: E402
from realtime.background import StartHub  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

# Outermost: everything below sees the client address and scheme a trusted proxy reported.
application = TrustedProxyMiddleware(StartHub(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            # The consumer finds the session's user itself (realtime/access.py).
            "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
        }
    )
))
