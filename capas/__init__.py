"""Capas for users: the `capas` command and the Python client."""

from capas.client import CapasAPIError, Client

__all__ = ["CapasAPIError", "Client"]
