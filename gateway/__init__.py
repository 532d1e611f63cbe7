"""SMX - Smart Meter eXtension gateway."""

__version__ = "0.1.0"
#: The URI of the SMX information model (gateway/nodesets/smx.xml): OPC UA's namespace of the SMX
#: types and instances, and the namespace of SMX's own names in PubSub metadata.
SMX_NAMESPACE = "http://smx-gateway.org/UA/"
