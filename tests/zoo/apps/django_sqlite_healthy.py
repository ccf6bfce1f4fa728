"""Django on SQLite (one settings module, one view), light traffic: healthy."""

import os
import tempfile

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(tempfile.mkdtemp(), "db.sqlite3")}},
    INSTALLED_APPS=[],
)
django.setup()
from django.db import connection  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

with connection.cursor() as cur:
    cur.execute("CREATE TABLE IF NOT EXISTS articles (id integer PRIMARY KEY, title text)")
    cur.executemany("INSERT OR IGNORE INTO articles VALUES (%s, %s)", [(i, f"article {i}") for i in range(1, 1001)])


def health(request):
    return JsonResponse({"ok": True})


def article(request, n):
    with connection.cursor() as cur:
        cur.execute("SELECT id, title FROM articles WHERE id = %s", [n])
        row = cur.fetchone()
    return JsonResponse({"id": row[0], "title": row[1]})


urlpatterns = [path("health", health), path("api/articles/<int:n>", article)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

app = get_wsgi_application()
