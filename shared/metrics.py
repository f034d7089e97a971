"""The names of the stack's own CloudWatch metrics (embedded metric format, written by
Powertools Metrics), shared by the functions that emit them and the alarms on them."""

from __future__ import annotations

NAMESPACE = "LeadNurture"
# A send whose SES answer was lost (5xx, timeout, interrupted run): the email may or may
# not have gone out, and is never sent again. Alarmed on its first occurrence.
SENDS_UNCERTAIN = "SendsUncertain"
