"""Django on gunicorn gthread (6 threads): /report waits ~1 s on a reporting backend while holding its
thread; report traffic takes most threads and the quick API calls queue."""

import os

import django
import requests
from django.conf import settings

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, INSTALLED_APPS=[], DATABASES={})
django.setup()
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

REPORTS = os.environ["DEP_URL"]


def health(request):
    return JsonResponse({"ok": True})


def report(request):
    return JsonResponse({"report": requests.get(f"{REPORTS}/render", timeout=10).json()})


def status(request, n):
    return JsonResponse({"order": n, "status": "shipped"})


urlpatterns = [path("health", health), path("report", report), path("api/status/<int:n>", status)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

app = get_wsgi_application()
