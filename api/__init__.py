"""The HTTP API: routes, schemas, auth dependency and error handlers (no ML framework here)."""
