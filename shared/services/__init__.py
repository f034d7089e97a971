"""The use cases: each changes leads through the ports (``shared.ports``) with the domain's
rules (capture, sending, engagement, qualification, lifecycle, opt-out, due scheduling,
hand-off, visits, purchases, registration, list import, disclosure)."""
