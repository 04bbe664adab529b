"""spanlake.storage: the lake's schema, layout, writer, reader and maintenance."""
