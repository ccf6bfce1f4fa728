"""One module per dashboard view: ``PATH``, ``NAME``, ``layout(**query)``, ``register_callbacks(app, client)``.

Component ids are module constants so tests and other pages refer to them by name.
Each view's data work is a pure ``refresh*(client, ...)`` function the callbacks call,
so tests and ``bench/dashboard.py`` can time and check it without a browser; wrapped in
``components.tolerant``, it turns an unreachable collector or a malformed answer into the
page's error outputs.  Layouts are ``components.live_page(interval, status, ...)`` (the 2-s
timer and the status line first); plain ticks register with ``components.on_tick``.
"""
