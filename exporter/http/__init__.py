"""HTTP: the ASGI middleware, route templates, trace ids, the HTTP series and `/metrics`."""
