"""The debug view: annotated frames over HTTP, drawn only when someone looks."""
