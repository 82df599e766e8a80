"""Ingestion: sources → raw snapshots → validation → cleaning → PostgreSQL → ``listings``."""
