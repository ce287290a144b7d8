"""Camera sources: decode, pace, reconnect, and hand the newest frame over a one-slot mailbox."""
