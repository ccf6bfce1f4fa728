from django.http import JsonResponse

from shop.models import Book


def health(request):
    return JsonResponse({"ok": True})


def book(request, book_id):
    found = Book.objects.get(pk=book_id)
    return JsonResponse({"id": found.pk, "title": found.title})
