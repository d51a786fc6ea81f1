"""Reports of compress runs: one self-contained HTML file with embedded plots, and Markdown."""

from ._report import write_report

__all__ = ["write_report"]
