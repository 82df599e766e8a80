"""Alembic migrations of homeloop's own tables, applied by provisioning."""
