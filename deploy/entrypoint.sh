#!/bin/sh
# Entry point of the UPR Tracker image.
#   <service>          catalog | monitoring | notifications | web: exec python -m services.<service>
#   anything else      run as given, e.g. `upr migrate`, `upr keys create ...`, `sh`
# exec, so the service is PID 1 and gets SIGTERM directly (uvicorn then shuts down gracefully).
set -eu

case "${1:-}" in
  catalog|monitoring|notifications|web)
    service="$1"
    shift
    exec python -m "services.${service}" "$@"
    ;;
  "")
    echo "usage: <catalog|monitoring|notifications|web> | <command ...>" >&2
    exit 64
    ;;
  *)
    exec "$@"
    ;;
esac
