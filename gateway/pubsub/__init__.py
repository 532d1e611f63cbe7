"""OPC UA PubSub over MQTT with the JSON message mapping (OPC 10000-14 §7.2.5, §7.3.4).

Pure modules, no I/O, used by the gateway's uplink and by the head-end alike:
:mod:`gateway.pubsub.codec` (messages <-> bytes) and :mod:`gateway.pubsub.topics` (the
MQTT topic tree).
"""
