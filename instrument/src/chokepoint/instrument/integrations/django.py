"""Django: the upstream Django instrumentor, run once the project's settings load
(:mod:`chokepoint.instrument.django_deferred`), never with Django's default settings.

Plan row ``django``; entry point ``chokepoint_django``.  chokepoint's distro hands this
fix-up the upstream instrumentor's ``instrument`` call instead of making it;
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=chokepoint_django`` makes the distro call it right
away, as upstream does.  ``uninstrument()`` removes the deferral if the settings never
loaded (the upstream instrumentor's own ``uninstrument`` is the distro's to call).
"""

from __future__ import annotations

from chokepoint.instrument.integrations.fixup import Fixup


class DjangoFixups(Fixup):
    library = "django"
    upstream = "opentelemetry.instrumentation.django:DjangoInstrumentor"

    def fix(self, run_upstream):
        from chokepoint.instrument.django_deferred import instrument_django

        if run_upstream is not None:
            yield instrument_django(run_upstream)
