"""Untrusted model files: pickle refused without opt-in, no remote code, corrupt headers named."""

import json
import pickle
import random
import shutil
import struct

import pytest

from workbench.errors import ModelLoadError, WorkbenchError
from workbench.models import mlp
from workbench.models.builtin import minilm_path


def payload(marker):
    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Payload())


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pkl", ".pth"])
def test_pickle_payloads_never_run_without_opt_in(session, tmp_path, suffix, figures):
    marker = tmp_path / "pwned"
    evil = tmp_path / f"model{suffix}"
    evil.write_bytes(payload(marker))
    with pytest.raises(ModelLoadError, match="pickle"):
        session.sql(f"CREATE MODEL evil FROM '{evil}'")
    assert not marker.exists()
    d = tmp_path / f"hf{suffix}"
    shutil.copytree(minilm_path(), d)
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(payload(marker))
    with pytest.raises(ModelLoadError, match="allow_pickle"):
        session.sql(f"CREATE MODEL evil FROM '{d}'")
    assert not marker.exists()
    row = figures.setdefault("untrusted: pickle payloads", [0, 0, "marker never written without opt-in"])
    row[0] += 2


def test_remote_code_is_refused(session, tmp_path):
    d = tmp_path / "remote"
    shutil.copytree(minilm_path(), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "modeling_evil.py").write_text("open('pwned', 'w')\n")
    with pytest.raises(ModelLoadError, match="remote code"):
        session.sql(f"CREATE MODEL r FROM '{d}'")


def corrupt(data: bytes, rng: random.Random) -> bytes:
    n = struct.unpack("<Q", data[:8])[0]
    header = bytearray(data[8 : 8 + n])
    kind = rng.randrange(7)
    if kind == 0:
        return struct.pack("<Q", rng.choice([0, 1, n + 17, 2**40, 2**64 - 1])) + data[8:]
    if kind == 1:
        return data[: rng.randrange(0, 8 + n)]
    if kind == 2:
        for _ in range(rng.randrange(1, 6)):
            header[rng.randrange(len(header))] = rng.randrange(256)
    elif kind == 3:
        header = bytearray(bytes(header).replace(b'"F32"', rng.choice([b'"F99"', b'"I8" ', b'"BOOL"'])))
    elif kind == 4:
        header = bytearray(bytes(header).replace(b'data_offsets":[', b'data_offsets":[9999999'))
    elif kind == 5:
        header = bytearray(bytes(header).replace(b"{", b"[", 1))
    else:
        header = bytearray(bytes(header).replace(b"widths", b"wodths"))
    return struct.pack("<Q", len(header)) + bytes(header) + data[8 + n :]


def test_corrupted_safetensors_headers_get_clear_errors(session, tmp_path, figures):
    good = tmp_path / "good.safetensors"
    mlp.save(mlp.MLP([64, 16, 10]), good)
    data = good.read_bytes()
    rng = random.Random(5)
    errors = loaded = 0
    for i in range(200):
        path = tmp_path / f"bad{i}.safetensors"
        path.write_bytes(corrupt(data, rng))
        try:
            session.sql(f"CREATE OR REPLACE MODEL bad FROM '{path}'")
            loaded += 1  # a mutation that left a valid file (e.g. a changed byte in padding)
        except ModelLoadError as exc:
            assert f"bad{i}.safetensors" in str(exc) and len(str(exc)) < 500
            errors += 1
        except WorkbenchError as exc:  # any other kind of error is a bug here
            pytest.fail(f"bad{i}: {type(exc).__name__}: {exc}")
    figures["untrusted: corrupt safetensors headers"] = (200, 0, f"{errors} clear errors, {loaded} still valid")
    assert errors + loaded == 200 and errors >= 150
    assert session.sql("SELECT 1 AS x").pl()["x"][0] == 1
