"""Thin views, one module per page: check access through dashboard.access, ask drift's query and domain
functions, render a template or, for htmx, one of its partials (the same URL serves both)."""
