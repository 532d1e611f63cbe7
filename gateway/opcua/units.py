"""EngineeringUnits of OPC UA variables from the unit table (OPC 10000-8 §5.6.3; gateway/units.py).

A leaf of its own: the gateway's address space and market nodes and the head-end's
portfolio nodes state their units the same way.
"""

from __future__ import annotations

from asyncua import ua

from gateway.units import UNECE_NAMESPACE, UNITS


def eu_information(unit_text: str) -> ua.EUInformation:
    """EngineeringUnits: the UNECE unit if there is one, else the text with UnitId -1
    (OPC 10000-8 §5.6.3; a price in EUR/MWh has no UNECE code)."""
    unit = UNITS.get(unit_text)
    if unit is None:
        text = ua.LocalizedText(unit_text)
        return ua.EUInformation(NamespaceUri=UNECE_NAMESPACE, UnitId=-1, DisplayName=text, Description=text)
    return ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE,
        UnitId=unit.unit_id,
        DisplayName=ua.LocalizedText(unit.display),
        Description=ua.LocalizedText(unit.description),
    )
