"""The dashboard: server-rendered pages (Jinja2 + htmx) beside the API, in the same app.
`service.ui.mount` adds it; this package init stays empty so `service.deps` can import
`service.ui.sessions` without pulling in the page routers."""
