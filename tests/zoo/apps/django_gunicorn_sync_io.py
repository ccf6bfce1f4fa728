"""Django on gunicorn sync workers (2 processes): each view waits 150 ms on a remote API."""

import os

import django
import requests
from django.conf import settings

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, INSTALLED_APPS=[], DATABASES={})
django.setup()
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

DEP = os.environ["DEP_URL"]


def health(request):
    return JsonResponse({"ok": True})


def profile(request, n):
    data = requests.get(f"{DEP}/profiles/{n}", timeout=5).json()
    return JsonResponse({"user": n, "profile": data})


urlpatterns = [path("health", health), path("profile/<int:n>", profile)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

app = get_wsgi_application()
