"""Settings of the test Django project: one app, PostgreSQL, no auth or sessions."""

import os

SECRET_KEY = "chokepoint-test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS = ["shop"]
# APP_NO_COMMON_MIDDLEWARE=1: as projects without CommonMiddleware (no Content-Length header)
MIDDLEWARE = [] if os.environ.get("APP_NO_COMMON_MIDDLEWARE") else ["django.middleware.common.CommonMiddleware"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("APP_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("APP_PG_PORT", "5432"),
        "USER": os.environ.get("APP_PG_USER", "postgres"),
        "NAME": os.environ.get("APP_PG_NAME", "chokepoint"),
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
