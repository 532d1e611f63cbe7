"""The committed NodeSet is the one tools/gen_nodeset.py writes, and it is well-formed."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NS = {"ua": "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"}


def test_committed_nodeset_matches_generator() -> None:
    spec = importlib.util.spec_from_file_location("gen_nodeset", ROOT / "tools" / "gen_nodeset.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "gateway" / "nodesets" / "smx.xml").read_text(encoding="utf-8")
    assert committed == module.build(), "run: python tools/gen_nodeset.py"


def test_nodeset_ids_are_unique_and_parents_exist() -> None:
    tree = ET.parse(ROOT / "gateway" / "nodesets" / "smx.xml")
    nodes = [n for n in tree.getroot() if n.get("NodeId")]
    ids = [n.get("NodeId") for n in nodes]
    assert len(ids) == len(set(ids))
    parents = {n.get("ParentNodeId") for n in nodes if n.get("ParentNodeId")}
    assert parents <= set(ids)
    names = {n.findtext("ua:DisplayName", namespaces=NS) for n in nodes}
    assert {"MeterType", "ObisValueType", "LoadProfileType", "EventLogType", "MeterEventType"} <= names
