"""Where events go: the SQLite journal (the outbox), the sink, the MQTT publisher, Home
Assistant discovery, snapshots, and the event schema."""
