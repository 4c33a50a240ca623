"""Exporters that read an ArchGraph or a compiled module (installed as ``plmgraph.exporters``)."""
