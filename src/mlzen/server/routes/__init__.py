"""The REST API's routers, one module per group of resources (see ``api``)."""
