"""Byte transports under the meter protocols (serial devices, ``socket://``, in-memory pairs)."""

from gateway.transport.base import Framing, Transport
from gateway.transport.memory import MemoryTransport
from gateway.transport.serial import SerialTransport, open_serial

__all__ = ["Framing", "MemoryTransport", "SerialTransport", "Transport", "open_serial"]
