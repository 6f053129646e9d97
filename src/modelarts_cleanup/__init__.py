"""Delete Huawei Cloud ModelArts notebook instances, safely, with one result per instance."""

from __future__ import annotations

__version__ = "0.1.0"
