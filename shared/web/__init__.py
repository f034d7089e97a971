"""The web edge: form bodies and their charsets, the submission model with its field
errors, the pages, the beacon."""
