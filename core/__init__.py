"""Shared domain of Capas: settings, database, repositories, services and the artifact store."""
