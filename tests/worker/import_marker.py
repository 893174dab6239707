"""Imported by ``graflow worker --import import_marker``: proves --import runs first."""

import os

_path = os.environ.get("GRAFLOW_TEST_IMPORT_MARKER")
if _path:
    with open(_path, "w") as fh:
        fh.write(str(os.getpid()))
