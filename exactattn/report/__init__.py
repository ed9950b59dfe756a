"""Reports: text for people, JSON for machines, LaTeX for the proof companion."""

from __future__ import annotations

from .json import verify_report, write_json
from .text import claim_line, learn_summary, verify_summary

__all__ = ["claim_line", "learn_summary", "verify_summary", "verify_report", "write_json"]
