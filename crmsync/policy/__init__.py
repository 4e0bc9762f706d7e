"""Policies as data: a filter language compiled to one SQL query per policy over the mirror.

``model`` holds the validated objects, ``filters`` and ``actions`` the registries plugins extend,
``validate`` turns config tables into policies (or key-path errors), ``sql`` compiles them, and
``cli`` is the ``crmsync validate`` command.
"""

from __future__ import annotations

from crmsync.policy import duplicates  # noqa: F401  (registers the duplicate_of filter)
from crmsync.policy.model import (
    DEFAULT_MAX_PERCENT,
    DEFAULT_MAX_RECORDS,
    PSEUDO_FIELDS,
    Action,
    All,
    AnyOf,
    Condition,
    FieldRef,
    Filter,
    Not,
    Policy,
    Registry,
)
from crmsync.policy.sql import compile_policy, count_sql, install_sql_functions, select_sql
from crmsync.policy.validate import Problem, check_policies, mirror_fields, parse_policies

__all__ = [
    "DEFAULT_MAX_PERCENT",
    "DEFAULT_MAX_RECORDS",
    "PSEUDO_FIELDS",
    "Action",
    "All",
    "AnyOf",
    "Condition",
    "FieldRef",
    "Filter",
    "Not",
    "Policy",
    "Problem",
    "Registry",
    "check_policies",
    "compile_policy",
    "count_sql",
    "install_sql_functions",
    "mirror_fields",
    "parse_policies",
    "select_sql",
]
