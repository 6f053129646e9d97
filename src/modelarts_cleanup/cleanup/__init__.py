"""Deciding and doing: planning, discovery, selection, grace, execution, stopping, the report.

May import the base modules, `events` (what to delete) and `cloud` (the client that does it).
"""
