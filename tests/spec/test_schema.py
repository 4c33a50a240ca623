"""The JSON schema documents itself: every field of every spec class has a description."""

from plmgraph.cli.spec_cmds import json_schema


def test_every_schema_property_has_a_description():
    schema = json_schema()
    classes = {"ModelSpec": schema, **schema["$defs"]}
    missing = [
        f"{name}.{field}"
        for name, cls in classes.items()
        for field, prop in cls.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert not missing, missing
    assert "RMSNorm" in classes["RMSNorm"]["properties"]["kind"]["description"]
