"""Numbers whose time zones the quiet-hours tests rely on, and times to check them at."""

from __future__ import annotations

from datetime import UTC, datetime

LA = "+14155552000"  # America/Los_Angeles
LA_2 = "+14155552001"
NY = "+12125552000"  # America/New_York
LONDON = "+442079460000"  # Europe/London
AU_MOBILE = "+61412345678"  # 8 zones, Indian/Cocos (UTC+6:30) to Lord Howe (UTC+11)
UK_MOBILE = "+447911123456"  # London and the Crown dependencies
TOLL_FREE = "+18005551234"  # every zone of the +1 countries, Guam to Pago Pago
FREEPHONE = "+80012345678"  # international freephone: no zone at all
DAY = "09:00-20:00"
HOUR = 3600.0


def utc(text: str) -> float:
    """Epoch seconds of an ISO time in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
