"""The operator's tools for a box (``smx-gateway certs | users | vpn``): they write the files
the gateway reads at start (certificates, the users file, the OpenVPN bundle). The running
service never imports them (``tests/unit/test_layering.py``)."""
