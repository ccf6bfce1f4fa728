from django.urls import path

from shop import views

urlpatterns = [
    path("health", views.health),
    path("books/<int:book_id>", views.book),
]
