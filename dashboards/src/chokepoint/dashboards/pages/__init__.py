"""One module per dashboard view: ``PATH``, ``NAME``, ``layout(**query)``, ``register_callbacks(app, client)``.

Component ids are module constants so tests and other pages refer to them by name.
Each view's data work is a pure ``refresh*(client, ...)`` function the callbacks call,
so tests and ``bench/dashboard.py`` can time and check it without a browser.
"""
