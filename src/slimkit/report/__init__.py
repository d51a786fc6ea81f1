"""Reports of compress runs: one self-contained HTML file with embedded plots, and Markdown."""

from ..search import register_report_writer
from ._report import write_report

register_report_writer(write_report)

__all__ = ["write_report"]
