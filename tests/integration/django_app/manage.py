"""A small Django project for the agent's Django integration test (``test_instrument_django.py``).

The usual ``manage.py``: ``DJANGO_SETTINGS_MODULE`` is set here, after the agent has
started, as in any Django project run as ``chokepoint-instrument python manage.py
runserver --noreload``.  The database is PostgreSQL, from ``APP_PG_HOST``/``APP_PG_PORT``/
``APP_PG_USER``/``APP_PG_NAME``.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
