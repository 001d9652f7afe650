"""chert-batch: send a spreadsheet of messages through Chert exactly once."""

from __future__ import annotations

__version__ = "0.1.0"
