"""Django instrumentation that waits for the project's settings.

The upstream Django instrumentor adds its middleware to ``settings.MIDDLEWARE`` when it
runs.  Under zero-code-change instrumentation it runs before the app's code, and in the
usual project ``DJANGO_SETTINGS_MODULE`` is not set yet (``manage.py`` and ``wsgi.py`` set
it themselves) or not importable yet (the project directory is not on ``sys.path``).  The
instrumentor then calls ``settings.configure()`` with Django's defaults, so the
project's own settings are never loaded: ``manage.py runserver`` stops with "You must set
settings.ALLOWED_HOSTS if DEBUG is False", and an app calling ``settings.configure(...)``
gets "Settings already configured".

Usage (the ``chokepoint_django`` integration calls it with the upstream instrumentor's call,
:mod:`chokepoint.instrument.integrations.django`)::

    instrument_django(lambda: DjangoInstrumentor().instrument(**options))

If the settings load now, the instrumentor runs now.  Otherwise it runs once, right after
the first ``django.setup()`` (which ``manage.py``, ``get_wsgi_application()`` and
``get_asgi_application()`` call before they build the request handler and read
``MIDDLEWARE``), with the project's settings in place.  A failing instrumentor is logged,
never raised into the app.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

_log = logging.getLogger(__name__)


def settings_loadable() -> bool:
    """Whether Django's settings are configured or load now (without configuring defaults)."""
    from django.conf import settings

    if settings.configured:
        return True
    try:
        settings.MIDDLEWARE  # noqa: B018 - loads DJANGO_SETTINGS_MODULE; a failure leaves settings unconfigured
    except Exception:  # not set, not importable yet, or failing now (the app will meet that itself): wait
        return False
    return True


def instrument_django(instrument: Callable[[], None]) -> Callable[[], None] | None:
    """Run ``instrument`` now, or after the first ``django.setup()``; returns an undo for the deferral."""
    if settings_loadable():
        instrument()
        return None
    import django

    original = django.setup
    done = False

    @functools.wraps(original)
    def setup(*args, **kwargs):
        nonlocal done
        result = original(*args, **kwargs)
        if not done:
            done = True
            try:
                instrument()
            except Exception:
                _log.warning("chokepoint: Django instrumentation failed; requests are not traced", exc_info=True)
        return result

    django.setup = setup
    _log.debug("chokepoint: Django settings not loadable yet; instrumenting after django.setup()")

    def undo() -> None:
        if django.setup is setup:
            django.setup = original

    return undo
