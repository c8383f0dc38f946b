"""The platform kit: what every service needs and none re-implements.

messaging (connection, topology, envelope, outbox relay, consumer), inbox, auth, db, config, telemetry,
logging and the web base. Nothing service-specific lives here.
"""
