"""The names of the stack's own CloudWatch metrics (embedded metric format, written by
Powertools Metrics), shared by the functions that emit them and by the dashboard and
alarms on them.

Every metric is a count (Sum) with one dimension, ``service``: the function that emitted
it. A metric several functions emit (an MQL can happen in three places) is one metric
per function, added up on the dashboard.
"""

from __future__ import annotations

NAMESPACE = "LeadNurture"

# capture: form posts stored (a post sent again within the hour is not counted twice),
# and the ones that created a lead.
FORM_POSTS = "FormPosts"
LEADS_CREATED = "LeadsCreated"
# capture, engagement, visits: a lead became an MQL.
LEADS_QUALIFIED = "LeadsQualified"
# handoff: an MQL published on the sales topic.
HANDOFFS_PUBLISHED = "HandoffsPublished"

# sender: what SES answered a send.
EMAILS_SENT = "EmailsSent"
# SES said slow down: the step is due again shortly.
SENDS_THROTTLED = "SendsThrottled"
# SES refused the message for good: the address is suppressed.
SENDS_REJECTED = "SendsRejected"
# A send whose SES answer was lost (5xx, timeout, interrupted run): the email may or may
# not have gone out, and is never sent again. Alarmed on its first occurrence.
SENDS_UNCERTAIN = "SendsUncertain"

# engagement: SES events, each counted once however often it is delivered. Opens and
# clicks are split by who made them, as classified when the event arrived
# (shared/content/engagement.yaml); a later event that shows an earlier one was a
# machine's moves it in the report counters, not in these metrics.
EMAILS_DELIVERED = "EmailsDelivered"
HUMAN_OPENS = "HumanOpens"
MACHINE_OPENS = "MachineOpens"
HUMAN_CLICKS = "HumanClicks"
MACHINE_CLICKS = "MachineClicks"
# Permanent bounces: what SES's bounce rate counts (and what suppresses an address).
HARD_BOUNCES = "HardBounces"
# Transient and undetermined bounces (a full mailbox, a message too large).
SOFT_BOUNCES = "SoftBounces"
COMPLAINTS = "Complaints"

# unsubscribe (the link in every email) and engagement (an SES subscription event):
# a lead opted out of marketing email.
OPT_OUTS = "OptOuts"

# scheduler: the sending guard paused nurture email (bounce or complaint rate at its
# limit). Alarmed on its first occurrence; only ``lead-nurture sending resume`` resumes.
SENDING_PAUSED = "SendingPaused"
