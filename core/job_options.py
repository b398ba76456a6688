"""How a job runs, besides what it trains: the options `POST /jobs` takes beside the spec.

Declared once for the route that queues a job, the route that validates a draft and the Python
client; it imports pydantic and the domain's errors alone, so the client uses it without the
server's libraries.
"""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from core.errors import Invalid

# Beyond this, a job that keeps failing is failing for a reason a retry will not fix.
MAX_ATTEMPTS_LIMIT = 10


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    submission_id: Annotated[StrictStr | None, Field(
        min_length=1, max_length=200,
        description="the client's id for this submission: submitting it again returns the "
                    "first job instead of queueing another")] = None
    max_runtime_s: Annotated[StrictInt | None, Field(
        gt=0, description="fail the job past this many seconds of training (at most the "
                          "server's limit)")] = None
    max_attempts: Annotated[StrictInt | None, Field(
        gt=0, le=MAX_ATTEMPTS_LIMIT,
        description="how many times a job whose worker died is tried in all (default: the "
                    "server's setting)")] = None

    name: Annotated[StrictStr | None, Field(
        min_length=1, max_length=200,
        description="a label for this run, shown in the jobs list (e.g. 'lr 0.1, no dropout')")
    ] = None
    note: Annotated[StrictStr | None, Field(
        max_length=2000, description="what this run tries or found, shown with the job")] = None

    @classmethod
    def split(cls, body: dict[str, Any]) -> tuple["JobOptions", dict[str, Any]]:
        """The options found in a job body, and the body without them (the spec)."""
        options = {name: body[name] for name in cls.model_fields if name in body}
        spec = {name: value for name, value in body.items() if name not in cls.model_fields}
        return cls.model_validate(options), spec


def parse_options(body: dict[str, Any]) -> tuple[JobOptions, dict[str, Any]]:
    """`JobOptions.split`, its errors as the API's: each naming the field and echoing the value."""
    try:
        return JobOptions.split(body)
    except ValidationError as error:
        details = [{"field": ".".join(str(part) for part in e["loc"]),
                    "message": e["msg"][0].lower() + e["msg"][1:], "value": e.get("input")}
                   for e in error.errors()]
        raise Invalid("; ".join(f"{d['field']}: {d['message']}, received {d['value']!r}"
                                for d in details), details) from None
