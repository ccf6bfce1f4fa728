"""Django: an API that returns its whole product list (~300 KB of JSON) uncompressed."""

import django
from django.conf import settings

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, INSTALLED_APPS=[], DATABASES={})
django.setup()
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

PRODUCTS = [{"id": i, "title": f"product {i}", "summary": "quite a long summary " * 6, "tags": ["a", "b", "c"]} for i in range(2000)]


def health(request):
    return JsonResponse({"ok": True})


def products(request):
    return JsonResponse({"products": PRODUCTS})


urlpatterns = [path("health", health), path("api/products", products)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

app = get_wsgi_application()
