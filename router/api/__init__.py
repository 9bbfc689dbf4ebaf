"""HTTP controllers: thin; parse, call the service, return a schema."""
