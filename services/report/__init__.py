"""The campaign report: one self-contained HTML file (figures embedded, no external assets)."""

from services.report.render import render_report

__all__ = ["render_report"]
