"""Fake HomeWizard devices for the benchmarks, in a process of their own (``DeviceProcess``).

Reads one command per line on standard input and answers ``ok ...`` on standard output:
``add PROFILE SEED SERIAL|-`` (answers JSON: host, ``/api`` body, index), ``advance SECONDS``,
``counts INDEX`` (requests per path, JSON), ``quit``. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import sys

from bench.harness import DeviceThread


def _answer(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    """Serve commands until ``quit`` or the end of the input."""
    devices = DeviceThread()
    try:
        for line in sys.stdin:
            command, *args = line.split()
            if command == "add":
                profile, seed, serial = args
                device = devices.add(
                    profile, seed=int(seed), serial=None if serial == "-" else serial
                )
                body = {
                    "host": device.host,
                    "device": device.device,
                    "index": len(devices.devices) - 1,
                }
                answer = json.dumps(body)
            elif command == "advance":
                devices.advance(float(args[0]))
                answer = ""
            elif command == "counts":
                answer = json.dumps(dict(devices.devices[int(args[0])].request_count))
            elif command == "quit":
                _answer("ok")
                break
            else:
                answer = None
            _answer("error: unknown command" if answer is None else f"ok {answer}")
    finally:
        devices.close()


if __name__ == "__main__":
    main()
