"""Finding, Report, and their JSON / HTML forms."""
from .finding import PAIR_COLUMNS, SEVERITIES, Finding, empty_pairs, make_pairs
from .report import SCHEMA_VERSION, Report

__all__ = ["Finding", "Report", "PAIR_COLUMNS", "SEVERITIES", "SCHEMA_VERSION", "empty_pairs", "make_pairs"]
