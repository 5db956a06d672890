"""Executors: one per paradigm. For now, the DL-centric one."""
