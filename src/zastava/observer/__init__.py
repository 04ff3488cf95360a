"""The node agent (spec §3): inspection, EntryTrace, engines, drift, publisher."""
