"""Django is instrumented once the project's settings load, never with Django's defaults.

Each case runs in a fresh interpreter: Django's settings are process-global.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(script: str, env_settings: str | None = None) -> str:
    env = {"PATH": "/usr/bin:/bin", "OTEL_SEMCONV_STABILITY_OPT_IN": "http"}
    if env_settings:
        env["DJANGO_SETTINGS_MODULE"] = env_settings
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_instrumentor_waits_for_settings_configured_by_the_app():
    out = run(
        """
        from importlib.metadata import entry_points
        from chokepoint.instrument.distro import ChokepointDistro
        from django.conf import settings

        (entry_point,) = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name == "django"]
        ChokepointDistro().load_instrumentor(entry_point, skip_dep_check=True)  # before the app: nothing configured yet
        assert not settings.configured  # Django's defaults were not forced on the app

        settings.configure(DEBUG=False, ALLOWED_HOSTS=["app.test"], MIDDLEWARE=["django.middleware.common.CommonMiddleware"], ROOT_URLCONF=__name__)
        import django
        django.setup()
        print(settings.ALLOWED_HOSTS, settings.MIDDLEWARE)
        django.setup()  # a second setup does not add the middleware twice
        print(len(settings.MIDDLEWARE))
        """
    )
    assert out.splitlines() == [
        "['app.test'] ['opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware', 'django.middleware.common.CommonMiddleware']",
        "2",
    ]


def test_loadable_settings_are_instrumented_right_away_and_failures_never_raise():
    out = run(
        """
        import sys, types
        from chokepoint.instrument.django_deferred import instrument_django, settings_loadable

        module = types.ModuleType("proj_settings")
        module.MIDDLEWARE = ["m"]
        module.SECRET_KEY = "x"
        sys.modules["proj_settings"] = module
        calls = []
        assert settings_loadable()
        assert instrument_django(lambda: calls.append("now")) is None
        print(calls)
        """,
        env_settings="proj_settings",
    )
    assert out.splitlines() == ["['now']"]

    out = run(
        """
        import django
        from django.conf import settings
        from chokepoint.instrument.django_deferred import instrument_django, settings_loadable

        original = django.setup
        assert not settings_loadable()  # DJANGO_SETTINGS_MODULE names a module not importable yet
        def boom():
            raise RuntimeError("instrumentor bug")
        undo = instrument_django(boom)
        assert django.setup is not original and not settings.configured
        settings.configure(SECRET_KEY="x")
        django.setup()  # the failing instrumentor is logged, not raised
        undo()
        print(django.setup is original)
        """,
        env_settings="not_yet_on_sys_path.settings",
    )
    assert out.splitlines() == ["True"]


def test_with_chokepoint_django_disabled_the_instrumentor_runs_right_away_as_upstream():
    out = run(
        """
        import os
        os.environ["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "chokepoint_django"
        from importlib.metadata import entry_points
        from chokepoint.instrument.distro import ChokepointDistro
        from django.conf import settings

        (entry_point,) = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name == "django"]
        ChokepointDistro().load_instrumentor(entry_point, skip_dep_check=True)
        print(settings.configured)  # upstream's behaviour: Django's defaults, configured now
        """
    )
    assert out.splitlines() == ["True"]
