"""The engine behind `Session`: plain Python, no Jupyter.

config   the frozen settings of a session (`SET` makes a new one)
io       one DuckDB cursor per call: queries, interrupts, error translation
models   which form of a model runs (catalog, offloaded, compressed) and its profile
planner  statement -> logical plan -> optimized physical plan (reads, never writes)
runner   runs a physical plan: each operator through its executor, then the statement
"""
