"""The HTTP side: the small server, /metrics, /healthz and the debug view."""
