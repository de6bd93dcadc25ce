"""The web console: incidents for commanders, the template library for comms staff, the
audit log. Rendered on the server (Jinja2), a little plain JavaScript for live parts."""
