"""``edged store``: events from a broker or a stream into PostgreSQL, once each."""
