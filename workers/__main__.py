"""`python -P -m workers worker -Q cpu ...`: Celery's worker command, importing nothing from
the working folder.

`-P` keeps the working folder off Python's import path; Celery's own command line would put
it back first while it loads the app and its task modules (`celery.utils.imports.
cwd_in_path`), so that a folder or file there named like a library (`triton/`, `json.py`)
would shadow it. Here the app and its tasks are imported by name before Celery starts, and
Celery, given the app itself, finds them loaded.
"""

import sys

import workers.tasks  # noqa: F401  (registers the training task)
from workers.celery_app import app

if __name__ == "__main__":
    sys.exit(app.start(sys.argv[1:]))
