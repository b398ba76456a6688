"""Services: the use cases shared by the API and the workers."""
