"""Reports of an analysis: data (``rows``, ``columns``) apart from formatting (``formats``).

Add a per-block figure to every format with one ``Column`` (see ``scalelab.report.columns``).
"""

from scalelab.report.columns import Column, Conditions, ReportContext, default_columns
from scalelab.report.formats import FORMATS, render, report_dict, to_csv, to_json, to_markdown
from scalelab.report.html import to_html
from scalelab.report.rows import DEPTH_BLOCKS, DEPTH_STAGES, Report, Row, build_report
from scalelab.report.table import to_table
from scalelab.report.units import human_bytes, human_count, human_percent, human_shape

__all__ = [
    "DEPTH_BLOCKS", "DEPTH_STAGES", "FORMATS", "Column", "Conditions", "Report", "ReportContext", "Row",
    "build_report", "default_columns", "human_bytes", "human_count", "human_percent", "human_shape",
    "render", "report_dict", "to_csv", "to_html", "to_json", "to_markdown", "to_table",
]
