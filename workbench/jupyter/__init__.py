"""Jupyter front end: the %%dlsql magic and its display. Thin: the engine does the work."""
