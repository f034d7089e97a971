"""The domain: leads, programs and the nurture engine, scoring, customers, events, the funnel
(pure: no I/O but reading content files, no AWS)."""
