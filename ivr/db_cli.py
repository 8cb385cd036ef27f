"""`ivr db upgrade` and `ivr db current`: the databases' migrations (ivr/migrations), by hand.

The line upgrades both databases at every start, so these are for looking, and for upgrading
ahead of a start (on PostgreSQL, once for several machines). The databases are the ones the
line's settings name: its store and the demo outside systems'.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa

from ivr import migrations, misconfig
from ivr.migrations import History
from ivr.settings import Settings


def register(commands: Any) -> None:
    """Add `ivr db` to the `ivr` command's parser."""
    db = commands.add_parser("db", help="the databases' schema migrations").add_subparsers(required=True)
    upgrade = db.add_parser("upgrade", help="bring both databases to the newest migration (start does too)")
    upgrade.set_defaults(run=lambda args: _each(_upgrade, making=True))
    current = db.add_parser("current", help="the migration each database is at")
    current.set_defaults(run=lambda args: _each(_current, making=False))


def _each(report: Any, *, making: bool) -> int:
    settings = Settings()
    if making:
        misconfig.check_data_dir(settings.data_dir)
    misconfig.check_database_urls(settings)
    for history in migrations.HISTORIES:
        url: str = getattr(settings, history.url)
        try:
            said = report(settings, history, url)
        except (OSError, sa.exc.OperationalError) as error:
            raise misconfig.cannot_open(error) from None
        print(f"{history.what} ({history.setting}): {said}")
    return 0


def _upgrade(settings: Settings, history: History, url: str) -> str:
    from ivr.store import make_engine

    if url.startswith("sqlite"):
        settings.private_data_dir()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            was = migrations.current(connection, history)
            before = None if was else migrations.made_before_migrations(connection, history)
        revision = migrations.upgrade(engine, history)
    finally:
        engine.dispose()
    if was == revision:
        return f"revision {revision} (head), as it was"
    if was:
        return f"revision {revision} (head), upgraded from revision {was}"
    if before:
        return f"revision {revision} (head), upgraded from the schema before migrations (revision {before})"
    return f"revision {revision} (head), made new"


def _current(settings: Settings, history: History, url: str) -> str:
    """Where the database is, without changing it (nor making it)."""
    path = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    if path and path != ":memory:" and not path.startswith("file:") and not os.path.exists(path):
        return "no database yet (the line makes it at start, or `ivr db upgrade`)"
    engine = sa.create_engine(url, hide_parameters=True, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            revision = migrations.current(connection, history)
            before = None if revision else migrations.made_before_migrations(connection, history)
    finally:
        engine.dispose()
    head = migrations.head(history)
    if revision == head:
        return f"revision {revision} (head)"
    if revision:
        return f"revision {revision}, behind head {head}: `ivr db upgrade` (or a start) upgrades it"
    if before:
        return (
            f"made before migrations (the schema of revision {before}): "
            "`ivr db upgrade` (or a start) upgrades it"
        )
    return "empty (the line makes its tables at start, or `ivr db upgrade`)"
