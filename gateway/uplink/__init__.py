"""The uplink to the fleet: the meters' data as OPC UA PubSub JSON over MQTT (issue 16).

:mod:`~gateway.uplink.writers` declares the DataSetWriters and builds their messages,
:mod:`~gateway.uplink.outbox` keeps the durable cursors over the archive,
:mod:`~gateway.uplink.link` holds the link discipline (backoff, pacing, TLS) and
:mod:`~gateway.uplink.service` owns the broker connection.
"""
