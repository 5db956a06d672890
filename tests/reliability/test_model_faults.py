"""Python models that misbehave: a clear error naming model and batch; the session lives on."""

import random
import time

import pytest
import torch

from tests.kill_points import Interrupt
from workbench.errors import ModelError, QueryInterrupted


class Raises(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("weights on fire")


class WrongShape(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(len(x) + 1, 3)


class WrongType(torch.nn.Module):
    def forward(self, x):
        return [1, 2, 3]


class NaNs(torch.nn.Module):
    def forward(self, x):
        out = torch.zeros(len(x), 3)
        out[-1, 0] = float("nan")
        return out


class Slow(torch.nn.Module):
    def forward(self, x):
        time.sleep(0.2)
        return torch.zeros(len(x), 3)


@pytest.mark.parametrize(
    "module, fragment",
    [
        (Raises(), r"model 'bad' failed on batch 1 \(rows 1-\d+\): RuntimeError: weights on fire"),
        (WrongShape(), r"model 'bad' failed on batch 1: returned shape \(\d+, 3\)"),
        (WrongType(), r"model 'bad' failed on batch 1: returned list, expected a tensor"),
        (NaNs(), r"model 'bad' returned NaN in batch 1"),
    ],
)
def test_faulty_models_give_clear_errors(session, figures, module, fragment):
    session.sql("CALL load_dataset('digits')")
    session.register_model("bad", module, task="embed", input_dim=64, output_dim=3, batch_size=64)
    with pytest.raises(ModelError, match=fragment):
        session.sql("CREATE TABLE out AS SELECT bad(pixels) AS y FROM digits WHERE id < 40")
    assert session.sql("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'out'").pl()["n"][0] == 0
    assert session.sql("SELECT 1 AS ok").pl()["ok"][0] == 1
    done = figures.setdefault("model faults", [0, 0, "raise, wrong shape, wrong type, NaN, slow + interrupt"])
    done[0] += 1


def test_slow_model_interrupted_is_never_turned_into_nulls(session, figures):
    session.sql("CALL load_dataset('digits')")
    session.register_model("slow", Slow(), task="embed", input_dim=64, output_dim=3, batch_size=8)
    # interrupt a random moment after the model's first batch, never timed from the query's start
    with Interrupt(random.Random(5).uniform(0.0, 0.3)).armed(session.telemetry) as interrupt:
        try:
            with pytest.raises(QueryInterrupted):
                session.sql("CREATE TABLE out AS SELECT slow(pixels) AS y FROM digits WHERE id < 400")
        except KeyboardInterrupt:  # a failure of this test, not a Ctrl-C that stops the run
            pytest.fail("Ctrl-C while the model ran escaped session.sql as KeyboardInterrupt, not QueryInterrupted")
    assert interrupt.sent_at is not None  # interrupted while the model ran, not before
    assert session.sql("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'out'").pl()["n"][0] == 0
    cached = session.sql("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'workbench_cache_slow'")
    if cached.pl()["n"][0]:
        assert session.sql("SELECT count(*) AS n FROM workbench_cache_slow").pl()["n"][0] == 0
    figures.setdefault("model faults", [0, 0, ""])[0] += 1
