"""Export tooling: ONNX files of the networks, verified against PyTorch (``python -m model.export``)."""

from .onnx_export import (
    TOLERANCE,
    ExportError,
    ExportReport,
    check_exportable,
    export_onnx,
    min_size,
    run_session,
    session,
    verify,
)

__all__ = ["TOLERANCE", "ExportError", "ExportReport", "check_exportable", "export_onnx", "min_size",
           "run_session", "session", "verify"]
