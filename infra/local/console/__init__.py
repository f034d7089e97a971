"""The local console: a browser view of the local stack (``make dev``) under ``/console/``.

- ``/console/site``    a sample website whose forms post to ``POST /v1/leads``
- ``/console/outbox``  every email SES sent; opening one publishes an SES Open event,
                       its links a Click event, and buttons a Bounce or a Complaint
                       (to the email-events topic: the real engagement path runs)
- ``/console/leads``   leads with stage, score, grade, temperature and program
- ``/console/sales``   what the sales topic delivered to the sales inbox queue
- ``/console/funnel``  stage counters of the last 90 days
- ``POST /console/clock`` the clock form on every page: move the clock forward and
                       run the schedules once

Only the stack's own pages may POST here (see ``infra.local.control.refuse_foreign``).

Local only: it reads moto's state and scans the table, which nothing on AWS does.
"""

from infra.local.console.app import PREFIX, ConsoleConfig, LocalConsole

__all__ = ["PREFIX", "ConsoleConfig", "LocalConsole"]
