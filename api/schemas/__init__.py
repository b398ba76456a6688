"""Request and response bodies of the REST API: one module per group of routes, and `base`
for what they share."""
