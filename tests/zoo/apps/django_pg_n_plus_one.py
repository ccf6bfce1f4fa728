"""Django ORM on PostgreSQL: an author list that reads each author's books one query at a time."""

import os
from urllib.parse import urlparse

import django
from django.conf import settings

url = urlparse(os.environ["DATABASE_URL"])
settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes"],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": url.path[1:], "USER": url.username, "HOST": url.hostname, "PORT": url.port}},
)
django.setup()
from django.db import connection, models  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


class Author(models.Model):
    name = models.CharField(max_length=80)

    class Meta:
        app_label = "library"


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    title = models.CharField(max_length=80)

    class Meta:
        app_label = "library"


with connection.schema_editor() as editor:
    if "library_author" not in connection.introspection.table_names():
        editor.create_model(Author)
        editor.create_model(Book)
        authors = Author.objects.bulk_create(Author(name=f"author {i}") for i in range(20))
        Book.objects.bulk_create(Book(author=a, title=f"book {a.id}-{k}") for a in authors for k in range(5))


def health(request):
    return JsonResponse({"ok": True})


def authors(request):
    return JsonResponse({"authors": [{"name": a.name, "books": [b.title for b in a.book_set.all()]} for a in Author.objects.all()]})


urlpatterns = [path("health", health), path("api/authors", authors)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

app = get_wsgi_application()
