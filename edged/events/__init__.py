"""Events: the wire type, the journal that makes them durable, and their publishers."""
