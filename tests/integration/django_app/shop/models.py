from django.db import models


class Book(models.Model):
    """The ``django_books`` table the test creates (not managed by migrations)."""

    title = models.TextField()

    class Meta:
        managed = False
        db_table = "django_books"
