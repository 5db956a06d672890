"""Real data sets that install everywhere, loaded into a session as tables.

    pydoc   pydoc(id INTEGER, topic VARCHAR, body VARCHAR): the paragraphs of CPython's
            own documentation topics (`pydoc_data.topics`)
    digits  digits(id INTEGER, pixels FLOAT[64], label INTEGER): scikit-learn's bundled
            8x8 handwritten digits (grey levels 0..16)

From SQL: `CALL load_dataset('pydoc')`. From Python: `workbench.datasets.load(s, "pydoc")`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from workbench.db import run
from workbench.errors import CatalogError

NAMES = ("pydoc", "digits")


def pydoc_table() -> pa.Table:
    from pydoc_data.topics import topics

    ids: list[int] = []
    names: list[str] = []
    bodies: list[str] = []
    for topic in sorted(topics):
        for para in topics[topic].split("\n\n"):
            text = " ".join(line.strip() for line in para.strip().splitlines()).strip()
            if len(text) >= 20:  # skip headings' underlines and empty fragments
                ids.append(len(ids))
                names.append(topic)
                bodies.append(text)
    return pa.table({"id": pa.array(ids, pa.int32()), "topic": names, "body": bodies})


def digits_table() -> pa.Table:
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = np.ascontiguousarray(data.data, dtype=np.float32)
    return pa.table(
        {
            "id": pa.array(np.arange(len(pixels)), pa.int32()),
            "pixels": pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), 64),
            "label": pa.array(data.target, pa.int32()),
        }
    )


def load(target: Any, name: str) -> int:
    """Create (or replace) table `name` in a session (or on a DuckDB connection); returns its
    row count."""
    builders = {"pydoc": pydoc_table, "digits": digits_table}
    if name not in builders:
        raise CatalogError(f"unknown dataset '{name}' (datasets: {', '.join(NAMES)})")
    table = builders[name]()
    con = target.cursor()  # a Session hands a cursor of its own; so does a DuckDB connection
    view = f"__wb_dataset_{name}"
    try:
        con.register(view, table)
        run(con, f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM {view}')
    finally:
        con.close()
    return table.num_rows
