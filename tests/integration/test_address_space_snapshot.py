"""Snapshot of the generated address space: every node under Objects/SMX for the demo meter.

A change to the model (NodeIds, names, types, units) shows up as a diff of
tests/snapshots/address_space.txt; regenerate it on purpose with
``SMX_UPDATE_SNAPSHOTS=1 pytest tests/integration/test_address_space_snapshot.py``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from asyncua import Node, ua

from gateway.config import OpcUaConfig, demo_config
from gateway.market.desk import MarketDesk
from gateway.market.external import ExternalData
from gateway.opcua.address_space import AddressSpace
from gateway.opcua.administration import AdminNodes
from gateway.opcua.market import MarketNodes
from gateway.opcua.server import build_server
from gateway.security.auth import UserDirectory
from gateway.security.pki import Pki
from tests.support.harness import demo

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "address_space.txt"


async def _describe(node: Node, path: str, lines: list[str]) -> None:
    node_class = await node.read_node_class()
    name = (await node.read_browse_name()).Name
    here = f"{path}/{name}"
    parts = [here, node.nodeid.to_string(), node_class.name]
    if node_class in (ua.NodeClass.Object, ua.NodeClass.Variable):
        parts.append(f"type={(await node.read_type_definition()).to_string()}")
    if node_class == ua.NodeClass.Variable:
        parts.append(f"dtype={(await node.read_data_type()).to_string()}")
        parts.append(f"display={(await node.read_display_name()).Text!r}")
        access = (await node.read_attribute(ua.AttributeIds.AccessLevel)).Value.Value
        if access & ua.AccessLevel.HistoryRead.mask:
            historizing = (await node.read_attribute(ua.AttributeIds.Historizing)).Value.Value
            configuration = await node.get_referenced_nodes(ua.ObjectIds.HasHistoricalConfiguration)
            parts.append(
                f"history={','.join(c.nodeid.to_string() for c in configuration)} historizing={historizing}"
            )
        if name == "EngineeringUnits":
            eu: Any = await node.read_value()
            parts.append(f"eu={eu.DisplayName.Text}:{eu.UnitId}")
        elif name in ("EURange", "ObisCode"):
            parts.append(f"value={await node.read_value()!r}")
    lines.append("  ".join(parts))
    refs = await node.get_references(refs=ua.ObjectIds.HierarchicalReferences)
    # A historized node's HasHistoricalConfiguration is shown on its line (history=...);
    # the shared configuration object itself is described once, under SMX.
    shared = ua.NodeId(ua.ObjectIds.HasHistoricalConfiguration)
    children = [Node(node.session, r.NodeId) for r in refs if r.IsForward and r.ReferenceTypeId != shared]
    for child in sorted(children, key=lambda c: c.nodeid.to_string()):
        await _describe(child, here, lines)


async def test_address_space_matches_snapshot() -> None:
    security = replace(demo().security, users="var/certs/users")
    server = await build_server(OpcUaConfig(port=0), security, UserDirectory(security.users))
    space = AddressSpace(server)
    await space.load_model()
    config = demo_config()
    await space.add_meter(config.meters[0], history=True)
    desk = MarketDesk(config.market, "var/archive", [config.meters[0].id], space.clock)
    market = MarketNodes(space, desk, ExternalData(config.external), space.clock)
    await market.add_market(config.meters[0].id)
    await market.add_external()
    await AdminNodes(space, Pki(security.pki)).add()
    lines: list[str] = []
    await _describe(server.get_node(ua.NodeId("SMX", space.ns)), "Objects", lines)
    text = "\n".join(lines) + "\n"
    if os.environ.get("SMX_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8")
