"""The numeric NodeIds of the SMX information model, in one place.

``tools/gen_nodeset.py`` writes ``gateway/nodesets/smx.xml`` with these numbers and the address
space instantiates and finds the types by them (namespace :data:`SMX_NAMESPACE`, ``ns=1`` in
the NodeSet file). Instances below a meter have string NodeIds built from the meter id
and the OBIS code (:mod:`gateway.opcua.address_space`).
"""

from __future__ import annotations

from typing import Final

import gateway

SMX_NAMESPACE: Final = gateway.SMX_NAMESPACE

SMX_GATEWAY_TYPE: Final = 1001
GATEWAY_METERS: Final = 1002
GATEWAY_SOFTWARE_VERSION: Final = 1003
GATEWAY_EXTERNAL_DATA: Final = 1004

METER_TYPE: Final = 1010
#: The identity properties of MeterType, from this number on (gen_nodeset's IDENTITY order).
METER_IDENTITY: Final = 1011
METER_DIAGNOSTICS: Final = 1016
METER_INSTANTANEOUS: Final = 1030
METER_ENERGY: Final = 1031
METER_LOAD_PROFILE_1: Final = 1032
METER_LOAD_PROFILE_2: Final = 1033
METER_EVENT_LOG: Final = 1034
METER_MARKET: Final = 1035
#: The variables of a MeterType's Diagnostics object, from this number on.
METER_DIAGNOSTICS_FIELDS: Final = 1121

METER_DIAGNOSTICS_TYPE: Final = 1050
#: The variables of MeterDiagnosticsType, from this number on (gateway.diagnostics order).
DIAGNOSTICS_TYPE_FIELDS: Final = 1051

LOAD_PROFILE_TYPE: Final = 1080
LOAD_PROFILE_CAPTURE_PERIOD: Final = 1081
LOAD_PROFILE_LAST_ENTRY_TIME: Final = 1082
LOAD_PROFILE_LAST_STATUS: Final = 1083
LOAD_PROFILE_ENTRIES_READ: Final = 1084

EVENT_LOG_TYPE: Final = 1090
EVENT_LOG_LAST_EVENT_TIME: Final = 1091
EVENT_LOG_LAST_EVENT_CODE: Final = 1092
EVENT_LOG_LAST_EVENT_NAME: Final = 1093
EVENT_LOG_EVENTS_READ: Final = 1094

METER_EVENT_TYPE: Final = 1100
METER_EVENT_CODE: Final = 1101
METER_EVENT_METER_ID: Final = 1102

OBIS_VALUE_TYPE: Final = 1110
OBIS_VALUE_CODE: Final = 1111
OBIS_VALUE_REFRESH_PERIOD: Final = 1112

MARKET_SERVICES_TYPE: Final = 1200
#: The advice variables of MarketServicesType, from this number on.
MARKET_ADVICE: Final = 1201
MARKET_PERIOD_MINUTES: Final = 1215
MARKET_NOTIFIED_DAYS: Final = 1216
#: Methods; each one's InputArguments and OutputArguments are the next two numbers.
MARKET_REGISTER_PROFILE: Final = 1220
MARKET_COMPUTE_ADVICE: Final = 1225
MARKET_READ_PROFILE: Final = 1230

EXTERNAL_VALUE_TYPE: Final = 1250
EXTERNAL_VALUE_FRESH_FOR: Final = 1251
EXTERNAL_VALUE_ORIGIN: Final = 1252

ADMINISTRATION_TYPE: Final = 1300
ADMINISTRATION_LIST_CERTIFICATES: Final = 1301
ADMINISTRATION_TRUST_CERTIFICATE: Final = 1305
ADMINISTRATION_REJECT_CERTIFICATE: Final = 1310
