"""The optimizer: cost model, calibration, hints, and rules (one per module)."""
