"""Scene presets: small modules that turn generic analytics into what a scene's users want.

Each is a ``SceneModule``: called once per analysed frame, after the tracker, zones and lines,
with the frame (pictures, for model-free monitors), the tracked objects and the generic events
of that frame; it returns its own events (use ``edged.analytics.alerts.Alerts`` for
conditions with a start and an end).
"""
