#!/usr/bin/env python3
"""Generates crates/core/data/openapi-v1.33.json: the OpenAPI v3 component schemas of every built-in Kubernetes
type, with their patch strategies, merge keys, list types and map keys (x-kubernetes-*).

Source: the JSON schemas shipped by the PyPI package `kubernetes-validate` (Kubernetes 1.25-1.37).
The JSON-schema form is turned back into the OpenAPI v3 form kube-apiserver serves:
`#/$defs/X` references become `#/components/schemas/X`, nullable types (`["string", "null"]`) become
plain types, and IntOrString becomes `{"type": "string", "format": "int-or-string",
"x-kubernetes-int-or-string": true}`.

Regenerate:
    python3 -m venv /tmp/kv && /tmp/kv/bin/pip install kubernetes-validate==1.37.0
    /tmp/kv/bin/python scripts/gen-openapi.py 1.33 > crates/core/data/openapi-v1.33.json
"""
import json
import os
import sys


def definitions_path(version):
    try:
        import kubernetes_validate
    except ImportError:
        sys.exit("install kubernetes-validate first (see the docstring)")
    base = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
    return os.path.join(base, f"v{version}.0-local", "_definitions.json")


def convert(node):
    if isinstance(node, list):
        return [convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            # Keys here are field names (JSONSchemaProps has one called `$ref`), not keywords.
            out[key] = {name: convert(v) for name, v in value.items()}
        elif key == "$ref":
            out[key] = value.replace("#/$defs/", "#/components/schemas/")
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                out[key] = types[0]
            elif types:
                out[key] = types
        else:
            out[key] = convert(value)
    return out


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else "1.33"
    with open(definitions_path(version)) as f:
        defs = json.load(f)["$defs"]
    schemas = {name: convert(schema) for name, schema in defs.items()}
    schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
        "type": "string",
        "format": "int-or-string",
        "x-kubernetes-int-or-string": True,
    }
    # Sorted, one schema per line: readable diffs when regenerated for another version.
    sys.stdout.write("{\n")
    names = sorted(schemas)
    for i, name in enumerate(names):
        sep = "," if i + 1 < len(names) else ""
        sys.stdout.write(f"{json.dumps(name)}:{json.dumps(schemas[name], separators=(',', ':'), sort_keys=True)}{sep}\n")
    sys.stdout.write("}\n")


if __name__ == "__main__":
    main()
