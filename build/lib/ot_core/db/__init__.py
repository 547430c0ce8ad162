"""Connections, the warehouse handle, its tables, the catalog and the SQL renderer."""
