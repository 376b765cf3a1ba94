"""All SQL of the service, one module per aggregate. Functions take a connection and never
commit: the request or job that owns the connection owns the transaction."""
