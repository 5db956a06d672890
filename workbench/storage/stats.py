"""What `CALL storage_stats()` shows: per stored model its logical bytes (its tensors and
files as written), the physical bytes of the blocks it holds, the bytes only it holds, the
models it shares blocks with, and the accuracy loss accepted when it was stored."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from workbench.storage.store import BLOCKS, STORED, TENSORS, ensure


def table(con: duckdb.DuckDBPyConnection) -> pa.Table:
    ensure(con)
    return con.sql(
        f"""
        WITH held AS (SELECT DISTINCT model, hash FROM {TENSORS}),
        holders AS (SELECT hash, count(*) AS n FROM held GROUP BY hash),
        sharing AS (
            SELECT a.model, list(DISTINCT b.model ORDER BY b.model) AS shared_with,
                   count(DISTINCT a.hash) AS shared_blocks
            FROM held a JOIN held b ON a.hash = b.hash AND a.model <> b.model GROUP BY a.model
        )
        SELECT s.model,
               s.logical_bytes,
               sum(bl.nbytes)::BIGINT AS physical_bytes,
               coalesce(sum(bl.nbytes) FILTER (WHERE h.n = 1), 0)::BIGINT AS unique_bytes,
               count(*)::BIGINT AS blocks,
               coalesce(any_value(sh.shared_blocks), 0)::BIGINT AS shared_blocks,
               coalesce(any_value(sh.shared_with), []::VARCHAR[]) AS shared_with,
               s.accuracy_loss
        FROM {STORED} s
        JOIN held USING (model)
        JOIN {BLOCKS} bl ON bl.hash = held.hash
        JOIN holders h ON h.hash = held.hash
        LEFT JOIN sharing sh ON sh.model = s.model
        GROUP BY s.model, s.logical_bytes, s.accuracy_loss
        ORDER BY s.model
        """
    ).to_arrow_table()


def total_physical_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes of every stored block (each counted once, however many models hold it)."""
    ensure(con)
    row = con.execute(f"SELECT coalesce(sum(nbytes), 0) FROM {BLOCKS}").fetchall()
    return int(row[0][0])
