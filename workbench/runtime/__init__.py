"""Runtime services shared by executors: memory budgets (and, later, offloading)."""
