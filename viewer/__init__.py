"""The viewer's static files (served by the sidecar at /)."""
