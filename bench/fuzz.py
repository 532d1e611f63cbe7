"""Long fuzz run: every protocol core in both roles, a million inputs (issue 7).

The targets are those of the unit tests (``tests/support/fuzz_targets.py``): IEC 62056-21 client
and meter, HDLC client and server, A-XDR, xDLMS APDUs as the client (responses) and the
meter (requests) reads them, COSEM interpretation in the gateway and the simulator's COSEM
server. ``make test`` runs them for a few hundred Hypothesis examples each; this runs the
same targets on inputs from a seeded :class:`random.Random` (mutated real and self-made
frames, fed whole, byte by byte or in random pieces) for as long as it is given.

Per target it reports the inputs run, inputs/s, how many were refused (a protocol error,
as they should be), how many let another exception escape (must be 0: every escape is a
bug, listed with the seed that reproduces it) and how many distinct refusal messages came
up (numbers and quoted bytes blanked): a rough count of the checks the input reached.

    python -m bench.fuzz --inputs 1000000          # split evenly over the targets
    python -m bench.fuzz --seconds 30              # 30 s per target (at most 1,000,000 in all)
    python -m bench.fuzz --replay hdlc/client 123  # run one escaped input again, with traceback
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.tables import table
from gateway.errors import ProtocolError
from tests.support.fuzz_targets import TARGETS, Target, check, fuzz_input

RESULTS = Path(__file__).parent / "results"
#: Inputs in all that a timed run aims at when it has enough seconds.
TOTAL_INPUTS = 1_000_000
#: Master seed: the run is reproducible, and each input has its own seed (for --replay).
SEED = 7
#: An escaped input is kept with at most this many bytes of hex in the results.
_SHOWN_BYTES = 512

_VARIABLE = re.compile(
    r"""Data\(.*|CosemDateTime\(.*|b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
    r"""|0x[0-9A-Fa-f]+|\b[0-9a-fA-F]{2}(?: [0-9a-fA-F]{2})+\b|\b[0-9a-fA-F]{4,}\b|\d+"""
)


def refusal_kind(err: ProtocolError) -> str:
    """The refusal's class and message with its variable parts (numbers, bytes, values) blanked."""
    return f"{type(err).__name__}: {_VARIABLE.sub('#', str(err))}"


def _input(target: Target, seed: int) -> tuple[bytes, random.Random]:
    rng = random.Random(seed)
    return fuzz_input(target, rng), rng


def fuzz_target(
    target: Target, *, inputs: int | None = None, seconds: float | None = None, seed: int = SEED
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``target`` for ``inputs`` inputs or ``seconds`` (whichever ends first); row and escapes."""
    master = random.Random(f"{seed}:{target.key}")
    target.seeds()  # build the corpus before the clock starts
    kinds: set[str] = set()
    escapes: list[dict[str, Any]] = []
    count = refused = 0
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else None
    while inputs is None or count < inputs:
        if deadline is not None and count % 32 == 0 and time.perf_counter() >= deadline:
            break
        input_seed = master.getrandbits(64)
        data, rng = _input(target, input_seed)
        count += 1
        try:
            refusals = check(target, data, rng)
        except Exception as err:
            escapes.append(
                {
                    "target": target.key,
                    "exception": type(err).__name__,
                    "message": str(err)[:200],
                    "seed": input_seed,
                    "input_hex": data[:_SHOWN_BYTES].hex(),
                    "input_bytes": len(data),
                }
            )
            continue
        if refusals:
            refused += 1
            kinds.update(refusal_kind(err) for err in refusals)
    elapsed = time.perf_counter() - started
    row = {
        "core": target.core,
        "role": target.role,
        "inputs": count,
        "seconds": elapsed,
        "inputs/s": count / elapsed if elapsed else 0.0,
        "refused %": 100 * refused / count if count else 0.0,
        "escaped": len(escapes),
        "refusal kinds": len(kinds),
    }
    return row, escapes


def run_fuzz(
    *,
    inputs: int | None = None,
    seconds: float | None = None,
    seed: int = SEED,
    keys: list[str] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The targets (all by default): ``inputs`` in all (split evenly) and/or ``seconds`` per target."""
    keys = keys or list(TARGETS)
    rows: list[dict[str, Any]] = []
    escapes: list[dict[str, Any]] = []
    for index, key in enumerate(keys):
        share = None if inputs is None else inputs // len(keys) + (index < inputs % len(keys))
        row, found = fuzz_target(TARGETS[key], inputs=share, seconds=seconds, seed=seed)
        rows.append(row)
        escapes += found
        if progress is not None:
            progress(row)
    total_inputs = sum(r["inputs"] for r in rows)
    total_s = sum(r["seconds"] for r in rows)
    rows.append(
        {
            "core": "all",
            "role": "",
            "inputs": total_inputs,
            "seconds": total_s,
            "inputs/s": total_inputs / total_s if total_s else 0.0,
            "refused %": sum(r["refused %"] * r["inputs"] for r in rows) / total_inputs
            if total_inputs
            else 0.0,
            "escaped": len(escapes),
            "refusal kinds": sum(r["refusal kinds"] for r in rows),
        }
    )
    return {"fuzz": rows, "fuzz_escapes": escapes}


async def measure_fuzz(seconds: float) -> dict[str, list[dict[str, Any]]]:
    """``seconds`` per target, at most :data:`TOTAL_INPUTS` inputs in all (CPU-bound, runs inline)."""
    return run_fuzz(inputs=TOTAL_INPUTS, seconds=seconds)


def print_fuzz(results: dict[str, list[dict[str, Any]]]) -> None:
    print(
        table("Fuzzing the protocol cores (mutated real and own frames; escaped must be 0)", results["fuzz"])
    )
    escapes = results.get("fuzz_escapes", [])
    if escapes:
        print()
        shown = [{k: e[k] for k in ("target", "exception", "message", "seed")} for e in escapes[:20]]
        print(table(f"Escaped exceptions ({len(escapes)}; python -m bench.fuzz --replay TARGET SEED)", shown))


def replay(key: str, seed: int) -> None:
    """Run one input of ``key`` again (as the run made it from ``seed``); escapes raise."""
    target = TARGETS[key]
    data, rng = _input(target, seed)
    print(f"{key} seed {seed}: {len(data)} bytes\n{data.hex()}")
    refusals = check(target, data, rng)
    print(f"refused {len(refusals)} times:", *(f"  {refusal_kind(err)}" for err in refusals), sep="\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inputs", type=int, help="inputs in all, split evenly over the targets")
    parser.add_argument("--seconds", type=float, help="seconds per target")
    parser.add_argument("--seed", type=int, default=SEED, help="master seed (default %(default)s)")
    parser.add_argument(
        "--target", action="append", choices=list(TARGETS), help="only this target (repeatable)"
    )
    parser.add_argument("--replay", nargs=2, metavar=("TARGET", "SEED"), help="run one input again")
    args = parser.parse_args()
    if args.replay:
        replay(args.replay[0], int(args.replay[1]))
        return
    if args.inputs is None:
        args.inputs = TOTAL_INPUTS  # also the cap of a timed run

    def show(row: dict[str, Any]) -> None:
        print(f"  {row['core']} / {row['role']}: {row['inputs']} inputs in {row['seconds']:.1f} s, "
              f"{row['escaped']} escaped", flush=True)  # fmt: skip

    started = time.perf_counter()
    results = run_fuzz(
        inputs=args.inputs, seconds=args.seconds, seed=args.seed, keys=args.target, progress=show
    )
    print()
    print_fuzz(results)
    print(f"\n{results['fuzz'][-1]['inputs']} inputs in {time.perf_counter() - started:.1f} s wall time")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "fuzz.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
