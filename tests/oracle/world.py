"""What both engines of the oracle hold: the same small tables, the same torch modules.

The tables are made by the same SQL in both databases (from the `digits` data set and
`range()`), so they hold identical values. The user models are small MLPs built here with
fixed seeds; `digits` and `minilm` are the packaged ones, taken from the engine's session so
that the reference runs the very same modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import torch

#: run in both databases once `digits` (the packaged data set) exists; `digits` is dropped after
TABLES = """
CREATE TABLE px AS
    SELECT id, pixels, label FROM digits WHERE id < 300
    UNION ALL SELECT 300 + i, NULL, NULL FROM range(2) t(i);
CREATE TABLE nums AS SELECT
    i::INTEGER AS id,
    CASE WHEN i % 7 = 3 THEN NULL ELSE [sin(i), cos(i), (i % 5) / 5.0, (i % 3) - 1.0]::FLOAT[4] END AS v,
    ['x', 'y', 'z'][i % 3 + 1] AS g,
    CASE WHEN i % 6 = 5 THEN NULL ELSE i % 4 END::INTEGER AS k,
    TIMESTAMP '2024-01-01' + INTERVAL (i * 90) MINUTE AS ts
    FROM range(40) t(i);
CREATE TABLE ev AS SELECT
    i::INTEGER AS id,
    CASE WHEN i % 11 = 4 THEN NULL ELSE (i * 7) % 40 END::BIGINT AS item,
    TIMESTAMP '2024-01-01' + INTERVAL (i * 47 + 13) MINUTE AS ts,
    (i % 5)::INTEGER AS qty
    FROM range(60) t(i);
CREATE TABLE bags AS SELECT
    i::INTEGER AS id,
    [[sin(i + j), cos(i * j), j / 3.0, -1.0]::FLOAT[4] FOR j IN range(i % 4)] AS vs,
    [((i * 5 + j * 3) % 40)::BIGINT FOR j IN range(i % 5)] AS items
    FROM range(15) t(i);
CREATE TABLE docs AS SELECT * FROM (VALUES
    (1, 'how to sort a list'), (2, 'reading a file line by line'), (3, 'the for loop'),
    (4, 'dictionary comprehension'), (5, 'raise an exception'), (6, 'catch an error'),
    (7, 'string formatting with f-strings'), (8, 'sorting a dictionary by value'),
    (9, 'open a file for writing'), (10, 'while loops and break'), (11, NULL),
    (12, 'list slicing'), (13, 'lambda functions'), (14, 'the with statement'),
    (15, 'generators and yield'), (16, 'decorators'), (17, 'classes and objects'),
    (18, 'import a module'), (19, 'virtual environments'), (20, 'unit tests')
    ) t(id, body);
CREATE TABLE empty_px (id INTEGER, pixels FLOAT[64]);
DROP TABLE digits;
"""

#: a polars DataFrame the statements name in FROM (`frame`); see test_oracle.py
FRAME = pl.DataFrame(
    {
        "id": list(range(0, 40, 3)),
        "w": [float(i) / 7 for i in range(0, 40, 3)],
        "tag": [["p", "q", "r"][i % 3] for i in range(0, 40, 3)],
    }
)


@dataclass(frozen=True)
class UserModel:
    """A model the test builds: its module and `register_model` options."""

    name: str
    module: torch.nn.Module
    task: str
    input_type: str  # the SQL type it takes
    labels: tuple[str, ...] | None = None

    @property
    def options(self) -> dict:
        return {"task": self.task, **({"labels": list(self.labels)} if self.labels else {})}


def user_models() -> list[UserModel]:
    """The small MLPs (fixed seeds: every call builds the same weights)."""
    torch.manual_seed(14)
    nn = torch.nn
    models = [
        UserModel("reg", nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 1)).eval(), "regress", "FLOAT[64]"),
        UserModel(
            "cls4",
            nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 3)).eval(),
            "classify",
            "FLOAT[4]",
            ("lo", "mid", "hi"),
        ),
        UserModel("vec4", nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 3)).eval(), "embed", "FLOAT[4]"),
        UserModel(
            "emb",
            nn.Sequential(nn.Embedding(40, 6), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval(),
            "classify",
            "BIGINT",
        ),
    ]
    with torch.no_grad():  # sharper classifiers: every label occurs, scores spread over (1/3, 1)
        models[1].module[-1].weight.mul_(8)
        models[3].module[-1].weight.mul_(6)
    return models


#: models without a relational form: their statements run dl_centric and udf_centric only
TEXT_MODELS = ("minilm",)
