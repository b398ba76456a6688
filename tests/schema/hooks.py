"""schemathesis hooks for the schema tier (loaded through `SCHEMATHESIS_HOOKS`)."""

import os

import schemathesis
from pydantic import TypeAdapter, ValidationError

# The ids of the keys the runs authenticate with: a run that revoked its own key would spend
# the rest of its cases on 401s.
KEPT_KEYS = {int(key_id) for key_id in os.environ.get("CAPAS_SCHEMA_KEPT_KEYS", "").split(",")
             if key_id}
NO_SUCH_KEY = 2**31 - 1


def _key_id(value: object) -> int | None:
    """The key id the server reads from the path, as FastAPI converts it ("02" is 2)."""
    try:
        return TypeAdapter(int).validate_python(str(value))
    except ValidationError:
        return None


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    # Last thing before each request, whatever phase generated it.
    if (case.method.upper() == "DELETE" and case.path == "/keys/{key_id}"
            and _key_id(case.path_parameters.get("key_id")) in KEPT_KEYS):
        case.path_parameters["key_id"] = NO_SUCH_KEY
