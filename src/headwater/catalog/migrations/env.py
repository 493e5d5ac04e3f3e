"""Alembic environment for the catalog: always run programmatically, on the connection passed in.

``headwater.catalog.engine.migrate`` puts an open connection (inside its transaction) into
``config.attributes["connection"]``; there is no ini file and no logging configuration here, so
opening a catalog never reconfigures the application's logging.
"""

from alembic import context

from headwater.catalog.models import metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("headwater catalog migrations run through headwater.catalog.engine.migrate()")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if hasattr(context, "config"):  # only under alembic; importing this file elsewhere does nothing
    run_migrations()
