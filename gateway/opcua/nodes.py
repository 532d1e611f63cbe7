"""AddNodesItems of objects and variables (OPC 10000-4 §5.7.2), for adding nodes in bulk.

A leaf of asyncua's types only: the gateway's address space and market nodes and the
head-end's portfolio nodes build their items here (one AddNodes call adds many, which
start-up time on a slow core wants).
"""

from __future__ import annotations

from asyncua import ua

#: Properties whose BrowseName is the standard's, in namespace 0 (OPC 10000-8 §5.6.2).
STANDARD_PROPERTIES = frozenset({"EngineeringUnits", "EURange"})


def object_item(
    parent: ua.NodeId,
    node_id: ua.NodeId,
    name: str,
    ns: int,
    type_def: ua.NodeId,
    *,
    reference: int = ua.ObjectIds.HasComponent,
    description: str = "",
) -> ua.AddNodesItem:
    """An object below ``parent``, named ``name`` in namespace ``ns``."""
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = node_id
    item.BrowseName = ua.QualifiedName(name, ns)
    item.NodeClass = ua.NodeClass.Object
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(reference)
    item.TypeDefinition = type_def
    attrs = ua.ObjectAttributes()
    attrs.DisplayName = ua.LocalizedText(name)
    if description:
        attrs.Description = ua.LocalizedText(description)
    item.NodeAttributes = attrs
    return item


def variable_item(
    parent: ua.NodeId,
    node_id: ua.NodeId,
    name: str,
    ns: int,
    value: ua.Variant,
    *,
    data_type: int,
    type_def: ua.NodeId,
    prop: bool = False,
    display: str | None = None,
    description: str = "",
    historizing: bool = False,
    writable: bool = False,
    current: bool = True,
) -> ua.AddNodesItem:
    """A scalar variable below ``parent`` named ``name`` in namespace ``ns`` (a property with
    ``prop``; a standard one's name in namespace 0), readable, and with ``historizing``
    readable as history, with ``writable`` writable; without ``current`` it has history
    only (no current value to read). Displayed as ``display`` or its name,
    described as ``description`` or that."""
    item = ua.AddNodesItem()
    item.RequestedNewNodeId = node_id
    item.BrowseName = ua.QualifiedName(name, 0 if prop and name in STANDARD_PROPERTIES else ns)
    item.NodeClass = ua.NodeClass.Variable
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty if prop else ua.ObjectIds.HasComponent)
    item.TypeDefinition = type_def
    attrs = ua.VariableAttributes()
    attrs.DisplayName = ua.LocalizedText(display or name)
    attrs.Description = ua.LocalizedText(description or display or name)
    attrs.DataType = ua.NodeId(data_type)
    attrs.Value = value
    attrs.ValueRank = ua.ValueRank.Scalar
    access = ua.AccessLevel.CurrentRead.mask if current else 0
    if historizing:
        access |= ua.AccessLevel.HistoryRead.mask
    if writable:
        access |= ua.AccessLevel.CurrentWrite.mask
    attrs.AccessLevel = access
    attrs.UserAccessLevel = access
    attrs.Historizing = historizing
    item.NodeAttributes = attrs
    return item
