"""Every facet table's rows of a dataset's splits, to compare two ways of publishing the same droplets."""

from __future__ import annotations

from sqlalchemy import text

from headwater.catalog import Catalog

__all__ = ["FACET_TABLES", "facet_tables"]

FACET_TABLES = {  # each facet table's columns but split_id, in a total order
    "facet_classes": "position, name, droplets, ordinals, counts, box_ordinals, confidences",
    "facet_uids": "uid, ordinal",
    "facet_values": "key, value, droplets, ordinals",
    "facet_metadata": "key, value, ordinal",
    "split_facets": "stats",
}


def facet_tables(cat: Catalog, uid: str) -> dict[str, dict[str, list[tuple[object, ...]]]]:
    """Every facet table's rows of each split of dataset ``uid``, by split name (bytes as bytes)."""
    tables: dict[str, dict[str, list[tuple[object, ...]]]] = {}
    with cat.engine.connect() as conn:
        for split_id, name in conn.execute(text("SELECT s.id, s.name FROM splits s JOIN datasets d "
                                                "ON d.id = s.dataset_id WHERE d.uid = :uid"), {"uid": uid}):
            tables[name] = {table: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in
                                    conn.execute(text(f"SELECT {columns} FROM {table} WHERE split_id = :id "
                                                      f"ORDER BY {columns}"), {"id": split_id})]
                            for table, columns in FACET_TABLES.items()}
    return tables
