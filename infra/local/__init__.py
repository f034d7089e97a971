"""The system on one machine: moto server, a local API Gateway, and the same handlers."""
