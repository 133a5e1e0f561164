#!/usr/bin/env python3
"""`upr-healthcheck URL`: exit 0 when URL answers 2xx within 3 s, 1 otherwise (container probes)."""

import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    """Probe the URL given as the only argument."""
    if len(argv) != 2:
        print("usage: upr-healthcheck http://127.0.0.1:<port>/readyz", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(argv[1], timeout=3) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"{argv[1]}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
