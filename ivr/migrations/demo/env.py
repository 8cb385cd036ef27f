"""Alembic's entry point for this history: the same for every history (see ivr/migrations)."""

from ivr.migrations import run_environment

run_environment()
