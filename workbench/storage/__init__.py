"""Models stored inside the database as content-addressed tensor blocks (issue 18).

    source.py   read a model's files (a transformers directory, an MLP .safetensors) into
                entries: each tensor's raw bytes, every other file's bytes
    blocks.py   cut an entry's bytes into fixed-size blocks keyed by their sha256
    store.py    the tables (`workbench_blocks`, `workbench_tensors`, `workbench_stored`):
                import in one transaction, load back as a state dict, drop with GC
    stats.py    what `CALL storage_stats()` shows

A block is stored once however many tensors and models hold it (exact dedup); a model's
rows say which blocks, in which order, make each of its tensors.
"""
