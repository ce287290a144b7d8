"""The lowest floor: the types every stage speaks (Frame, Detections, Event, topics, masks),
box geometry, and small primitives (latency meters, thread priority). Imports nothing else
of edged."""
