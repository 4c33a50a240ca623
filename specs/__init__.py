"""The zoo: one YAML spec per architecture, installed as package data (``plmgraph.specs``)."""
