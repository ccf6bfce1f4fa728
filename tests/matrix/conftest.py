"""The library matrix's tests run only inside a matrix venv (``scripts/matrix.py`` sets
``CHOKEPOINT_MATRIX_LIBRARY``); the normal ``pytest`` run does not collect them."""

import os

collect_ignore_glob = [] if os.environ.get("CHOKEPOINT_MATRIX_LIBRARY") else ["test_*.py"]
