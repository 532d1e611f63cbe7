"""The rooms keep to themselves (DESIGN §2): rules over the gateway's import graph.

Every ``import`` of every module under ``gateway/`` counts, also those inside functions
and under ``TYPE_CHECKING`` (an annotation is a dependency too). The rules are checked
against the real tree, and each one is shown to catch a violation in a tree made for it.
One more rule is the tests' own: what tests, benchmarks and tools share comes from
``tests/support``, never from a test module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """The modules ``path`` imports (``from a.b import c`` counts ``a.b`` and ``a.b.c``)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_graph(root: Path, package: str = "gateway") -> dict[str, set[str]]:
    """Module -> the modules it imports, for every module of ``package`` below ``root``."""
    top = root / package
    return {module_name(p, root): imports_of(p, module_name(p, root)) for p in sorted(top.rglob("*.py"))}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden(graph: Mapping[str, set[str]], room: str, banned: Iterable[str]) -> list[str]:
    """``module imports target`` for every import of a module in ``room`` that is banned."""
    banned = tuple(banned)
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if _within(module, room)
        for target in targets
        if any(_within(target, b) for b in banned)
    )


def closure(graph: Mapping[str, set[str]], start: str) -> set[str]:
    """Every module of the graph that ``start`` reaches through its imports."""
    seen, todo = {start}, [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            # ``from gateway.x import y`` names a module or a name in one: keep what is a module.
            if target in graph and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


#: (room, what it must not import, why)
RULES = (
    ("gateway.web", ("gateway.opcua", "gateway.app", "gateway.uplink.service"),
     "the web is an adapter beside OPC UA and the uplink"),
    ("gateway.opcua", ("gateway.web", "gateway.app", "gateway.uplink.service"),
     "OPC UA is an adapter beside the web and the uplink"),
    ("gateway.protocols", ("asyncio", "serial", "serial_asyncio", "time", "gateway.clock",
                           "gateway.transport"), "protocol cores are sans-I/O: bytes in, events out"),
    ("gateway.archive", ("asyncua", "aiohttp", "gateway.opcua", "gateway.web"),
     "the archive answers in plain Python types"),
    ("gateway.market", ("asyncua", "aiohttp.web", "gateway.opcua", "gateway.web"),
     "the market knows neither OPC UA nor the web page"),
    ("gateway.meter", ("asyncua", "aiohttp", "gateway.opcua", "gateway.web", "gateway.archive"),
     "the meter side publishes its model; the adapters consume it"),
    ("gateway.pubsub", ("asyncio", "aiomqtt", "paho", "asyncua", "gateway.clock", "gateway.uplink",
                        "gateway.config", "gateway.meter", "gateway.archive"),
     "the PubSub codec is pure: messages in, bytes out, shared with the head-end"),
    ("gateway.uplink.status", ("aiomqtt", "paho", "gateway.uplink.service"),
     "the adapters show the uplink's state without pulling in MQTT"),
    ("gateway.uplink", ("asyncua", "aiohttp", "gateway.opcua", "gateway.web"),
     "the uplink is an adapter beside OPC UA and the web"),
    ("gateway.quality.en50160", ("asyncio", "asyncua", "aiohttp", "time", "gateway.clock", "gateway.opcua",
                         "gateway.web", "gateway.meter", "gateway.archive"),
     "power quality is pure: values and events in, statistics out"),
    ("gateway.alarms", ("asyncua", "aiohttp", "gateway.opcua", "gateway.web", "gateway.uplink.service"),
     "alarms are a service beside the adapters, which publish and acknowledge them"),
)  # fmt: skip


@pytest.mark.parametrize(("room", "banned", "why"), RULES, ids=[r[0] for r in RULES])
def test_rooms_import_only_what_they_may(room: str, banned: tuple[str, ...], why: str) -> None:
    assert forbidden(import_graph(ROOT), room, banned) == [], why


def test_the_running_service_never_imports_the_operator_tools() -> None:
    graph = import_graph(ROOT)
    assert "gateway.provision" in graph
    service = closure(graph, "gateway.app")
    assert {"gateway.meter.poller", "gateway.opcua.server", "gateway.web.api"} <= service
    assert sorted(m for m in service if _within(m, "gateway.provision")) == []
    # Only the command line, which dispatches to them, imports the tools.
    users = {m for m, targets in graph.items() if any(_within(t, "gateway.provision") for t in targets)}
    assert {m for m in users if not _within(m, "gateway.provision")} == {"gateway.cli"}


def _tree(tmp_path: Path, modules: Mapping[str, str]) -> Path:
    for name, source in modules.items():
        path = tmp_path.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(tmp_path).parents:
            if folder != Path("."):
                (tmp_path / folder / "__init__.py").touch()
        path.write_text(source, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "source", "room", "banned"),
    [
        ("gateway.web.api", "from gateway.opcua.history import HistoryFault\n",
         "gateway.web", ("gateway.opcua",)),
        ("gateway.web.api", "if TYPE_CHECKING:\n    from gateway.app import Gateway\n",
         "gateway.web", ("gateway.app",)),
        ("gateway.opcua.market", "def f():\n    import gateway.web.views\n",
         "gateway.opcua", ("gateway.web",)),
        ("gateway.protocols.hdlc", "import asyncio\n", "gateway.protocols", ("asyncio",)),
        ("gateway.protocols.hdlc", "from ..clock import SystemClock\n",
         "gateway.protocols", ("gateway.clock",)),
        ("gateway.archive.query", "from asyncua import ua\n", "gateway.archive", ("asyncua",)),
        ("gateway.pubsub.codec", "import asyncio\n", "gateway.pubsub", ("asyncio",)),
        ("gateway.web.views", "from gateway.uplink.service import Uplink\n",
         "gateway.web", ("gateway.uplink.service",)),
    ],
)  # fmt: skip
def test_each_rule_catches_an_import_added_against_it(
    tmp_path: Path, module: str, source: str, room: str, banned: tuple[str, ...]
) -> None:
    root = _tree(tmp_path, {module: source})
    assert forbidden(import_graph(root), room, banned), f"{source!r} in {module} went unnoticed"


def test_the_service_closure_catches_a_tool_imported_on_the_way(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "gateway.app": "from gateway.opcua import server\n",
            "gateway.opcua.server": "from gateway.provision.openvpn import VpnPki\n",
            "gateway.provision.openvpn": "",
        },
    )
    assert "gateway.provision.openvpn" in closure(import_graph(root), "gateway.app")


def from_test_modules(graph: Mapping[str, set[str]]) -> list[str]:
    """``module imports target`` for every import of a test module (or of a name in one)."""
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if any(part.startswith("test_") for part in target.split("."))
    )


def test_tests_bench_and_tools_share_helpers_only_through_tests_support() -> None:
    # A helper kept in a test module ties test files together: tests/support is its one home.
    graph = {
        name: targets
        for top in ("tests", "bench", "tools")
        for name, targets in import_graph(ROOT, top).items()
    }
    assert "tests.support.strategies" in graph
    assert from_test_modules(graph) == []


def test_the_test_module_rule_catches_an_import_from_one(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {"tests.unit.test_a": "", "tests.unit.test_b": "from tests.unit.test_a import frames\n"},
    )
    assert from_test_modules(import_graph(root, "tests")) == [
        "tests.unit.test_b imports tests.unit.test_a",
        "tests.unit.test_b imports tests.unit.test_a.frames",
    ]


#: The head-end's OPC UA adapter (``headend/opcua.py`` or a package ``headend/opcua/``).
HEADEND_OPCUA = "headend.opcua"
#: What the head-end's OPC UA adapter may take of the gateway's OPC UA room: the server as the
#: gateway builds it (guard, policies, roles), the methods' shared shapes and refusals, the
#: EngineeringUnits, the node builders, what every HistoryRead answerer shares, the node
#: cache; and the users and the PKI. Not the gateway's address space, market nodes or history
#: (they pull in the meter, the archive and the market desk).
HEADEND_OPCUA_MAY = ("asyncua", "gateway.opcua.server", "gateway.opcua.guard", "gateway.opcua.methods",
                     "gateway.opcua.units", "gateway.opcua.nodes", "gateway.opcua.history_read",
                     "gateway.opcua.node_cache", "gateway.security")  # fmt: skip
#: The rooms of the running gateway the head-end never imports (the adapter: but the above).
HEADEND_NEVER = ("gateway.app", "gateway.opcua", "gateway.web", "gateway.meter.poller",
                 "gateway.uplink.service", "gateway.archive", "gateway.provision", "gateway.simulator",
                 "asyncua", "gateway.security")  # fmt: skip


def head_end_breaches(graph: Mapping[str, set[str]]) -> list[str]:
    """``module imports target`` for every head-end import of a gateway room it may not have:
    the OPC UA adapter may have what :data:`HEADEND_OPCUA_MAY` lists, nothing else may."""
    adapter = {m: t for m, t in graph.items() if _within(m, HEADEND_OPCUA)}
    rest = {m: t for m, t in graph.items() if not _within(m, HEADEND_OPCUA)}
    allowed = {
        m: {t for t in ts if not any(_within(t, a) for a in HEADEND_OPCUA_MAY)} for m, ts in adapter.items()
    }
    return sorted(forbidden(rest, "headend", HEADEND_NEVER) + forbidden(allowed, "headend", HEADEND_NEVER))


def test_the_head_end_and_the_gateway_share_only_the_vocabulary_and_the_codec(tmp_path: Path) -> None:
    """The head-end reuses the gateway's vocabulary (config reader, errors, clock, time), the
    PubSub codec and the uplink's writer table; never a room of the running gateway, but for
    its OPC UA adapter, which builds its server as the gateway does. The gateway never
    imports the head-end."""
    graph = {**import_graph(ROOT), **import_graph(ROOT, "headend")}
    assert HEADEND_OPCUA in graph or any(_within(m, HEADEND_OPCUA) for m in graph)
    assert head_end_breaches(graph) == []
    assert forbidden(graph, "gateway", ("headend",)) == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("headend.x", "from gateway.opcua.ids import SMX_NAMESPACE\n"),
        ("headend.x", "from gateway.opcua.server import build_server\n"),
        ("headend.x", "import asyncua\n"),
        ("headend.portfolio.y", "from gateway.security.users import Role\n"),
        ("headend.opcua", "from gateway.opcua.market import MarketNodes\n"),
        ("headend.opcua", "from gateway.archive.query import Span\n"),
        ("headend.opcua.history", "from gateway.opcua.address_space import AddressSpace\n"),
        ("headend.opcua", "from gateway.opcua.history import ArchiveHistory\n"),
        ("headend.opcua", "from gateway.opcua.history_codec import history_data\n"),
        ("headend.portfolio.y", "from gateway.opcua.history_read import HistoryFault\n"),
    ],
)
def test_the_head_end_rule_can_fail(tmp_path: Path, module: str, source: str) -> None:
    """Caught: a head-end module beside the adapter importing an OPC UA room, asyncua or the
    users; the adapter (module or package) importing a gateway room beyond its list."""
    root = _tree(tmp_path, {module: source})
    assert head_end_breaches(import_graph(root, "headend")), f"{source!r} in {module} went unnoticed"


#: What the gateway modules the adapter may import must not reach through their own imports.
HEADEND_OPCUA_NEVER_REACHES = ("gateway.app", "gateway.meter", "gateway.archive", "gateway.market.desk",
                               "gateway.opcua.address_space", "gateway.opcua.market", "gateway.opcua.history",
                               "gateway.web")  # fmt: skip


def reached_through_the_allowed(graph: Mapping[str, set[str]]) -> list[str]:
    """``allowed reaches module`` for every room of :data:`HEADEND_OPCUA_NEVER_REACHES` that a
    gateway module of :data:`HEADEND_OPCUA_MAY` pulls in."""
    allowed = [m for m in graph if _within(m, "gateway") and any(_within(m, a) for a in HEADEND_OPCUA_MAY)]
    return sorted(
        f"{module} reaches {reached}"
        for module in allowed
        for reached in closure(graph, module)
        if any(_within(reached, r) for r in HEADEND_OPCUA_NEVER_REACHES)
    )


def test_what_the_adapter_may_import_pulls_in_no_room_of_the_running_gateway() -> None:
    """The shared modules stay leaves: allowing one lets in nothing of the meter, the archive,
    the market desk or the gateway's own OPC UA nodes."""
    assert reached_through_the_allowed(import_graph(ROOT)) == []


def test_the_reach_rule_can_fail(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "gateway.opcua.methods": "from gateway.opcua.units import eu_information\n",
            "gateway.opcua.units": "from gateway.archive.aggregates import Result\n",
            "gateway.archive.aggregates": "",
        },
    )
    assert reached_through_the_allowed(import_graph(root)) == [
        "gateway.opcua.methods reaches gateway.archive.aggregates",
        "gateway.opcua.units reaches gateway.archive.aggregates",
    ]


def test_the_head_end_rule_lets_the_adapter_build_its_server(tmp_path: Path) -> None:
    adapter = (
        "from asyncua import ua\nfrom gateway.opcua.server import build_server\n"
        "from gateway.opcua.methods import refused\nfrom gateway.security.auth import UserDirectory\n"
        "from gateway.opcua.history_read import HistoryFault\nfrom gateway.opcua.nodes import variable_item\n"
    )
    for module in ("headend.opcua", "headend.opcua.nodes"):
        root = _tree(tmp_path / module, {module: adapter})
        assert head_end_breaches(import_graph(root, "headend")) == []
