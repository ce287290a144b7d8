"""Analytics over tracked objects: zones, lines, object lifecycle. Never imports an engine."""
