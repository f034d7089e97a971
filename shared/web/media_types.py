"""Media types the API answers with (a module of its own: every handler imports it, the
scheduler too, without the web helpers' models)."""

JSON_TYPE = "application/json; charset=utf-8"  # every JSON answer of the API
