"""The plan of a dlsql query: relational SQL plus model operators."""

from workbench.plan.nodes import ModelOperator, Plan

__all__ = ["ModelOperator", "Plan"]
