"""SMX head-end: ingests a fleet of SMX gateways from an MQTT broker into a database (issue 17)."""
