"""Wait until /healthz is green, then say where the product is; stays up so honcho keeps going."""

import sys
import time

import httpx


def main(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                print(f"\n  Switchboard is ready: {url}/\n", flush=True)
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        print(f"Switchboard did not become healthy at {url}/healthz", flush=True)
        sys.exit(1)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1])
