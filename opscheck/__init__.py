"""opscheck: a team's daily operations runbook as a pytest suite."""

from opscheck.judge import Measurement, Verdict

__all__ = ["Measurement", "Verdict"]
