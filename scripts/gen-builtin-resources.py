#!/usr/bin/env python3
"""Generate crates/core/data/builtin-resources.json: a table of every built-in Kubernetes resource type.

Reads the k8s-openapi crate source (one Kubernetes-version directory, e.g.
.../k8s-openapi-0.29.0/src/v1_33). Each `impl crate::Resource for T` block gives
group, version, kind, plural (URL_PATH_SEGMENT) and scope; `impl crate::ListableResource`
tells whether the type is listable; a `pub status:` field in the struct means a status
subresource. Subresource types (Scale, Eviction, TokenRequest, Status) and the meta/v1
discovery types (APIGroup, ...; empty URL path segment) are skipped. Short names,
categories and the few irregular verb sets are curated below to match kube-apiserver
discovery.

Regenerate (default source: newest k8s-openapi-0.29.* in ~/.cargo/registry/src, v1_33):

    python3 scripts/gen-builtin-resources.py -o crates/core/data/builtin-resources.json
    python3 scripts/gen-builtin-resources.py /path/to/k8s-openapi-0.29.0/src/v1_33 > out.json
"""
import argparse
import glob
import json
import os
import re
import sys

# Keyed by (group, plural); applies to every served version. Matches the apiserver's
# ShortNamesProvider / CategoriesProvider implementations.
SHORT_NAMES = {
    ("", "componentstatuses"): ["cs"],
    ("", "configmaps"): ["cm"],
    ("", "endpoints"): ["ep"],
    ("", "events"): ["ev"],
    ("", "limitranges"): ["limits"],
    ("", "namespaces"): ["ns"],
    ("", "nodes"): ["no"],
    ("", "persistentvolumeclaims"): ["pvc"],
    ("", "persistentvolumes"): ["pv"],
    ("", "pods"): ["po"],
    ("", "replicationcontrollers"): ["rc"],
    ("", "resourcequotas"): ["quota"],
    ("", "serviceaccounts"): ["sa"],
    ("", "services"): ["svc"],
    ("apiextensions.k8s.io", "customresourcedefinitions"): ["crd", "crds"],
    ("apps", "daemonsets"): ["ds"],
    ("apps", "deployments"): ["deploy"],
    ("apps", "replicasets"): ["rs"],
    ("apps", "statefulsets"): ["sts"],
    ("autoscaling", "horizontalpodautoscalers"): ["hpa"],
    ("batch", "cronjobs"): ["cj"],
    ("certificates.k8s.io", "certificatesigningrequests"): ["csr"],
    # events.k8s.io is served by the same REST storage as core events, so it reports "ev" too.
    ("events.k8s.io", "events"): ["ev"],
    ("networking.k8s.io", "ingresses"): ["ing"],
    ("networking.k8s.io", "networkpolicies"): ["netpol"],
    ("policy", "poddisruptionbudgets"): ["pdb"],
    ("scheduling.k8s.io", "priorityclasses"): ["pc"],
    ("storage.k8s.io", "storageclasses"): ["sc"],
    ("storage.k8s.io", "volumeattributesclasses"): ["vac"],
}
ALL = {("", "pods"), ("", "services"), ("", "replicationcontrollers"),
       ("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
       ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs"),
       ("autoscaling", "horizontalpodautoscalers")}
API_EXTENSIONS = {("apiextensions.k8s.io", "customresourcedefinitions"),
                  ("apiregistration.k8s.io", "apiservices")} | {
    ("admissionregistration.k8s.io", p) for p in (
        "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
        "validatingadmissionpolicies", "validatingadmissionpolicybindings",
        "mutatingadmissionpolicies", "mutatingadmissionpolicybindings")}
SCALE = {("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
         ("", "replicationcontrollers")}
FULL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
VERB_OVERRIDES = {  # apiserver storages that do not implement the full verb set
    ("", "namespaces"): ["create", "delete", "get", "list", "patch", "update", "watch"],
    ("", "componentstatuses"): ["get", "list"],
}

RESOURCE_RE = re.compile(r"^impl crate::Resource for (\w+) \{\n(.*?)^\}", re.M | re.S)
CONST_RE = re.compile(r'const (\w+): &\'static str = "([^"]*)";')
SCOPE_RE = re.compile(r"type Scope = crate::(\w+);")


def default_source():
    pattern = os.path.expanduser("~/.cargo/registry/src/*/k8s-openapi-0.29.*")
    key = lambda p: [int(x) if x.isdigit() else x for x in re.split(r"[.-]", os.path.basename(p))]
    dirs = sorted(glob.glob(pattern), key=key)
    if not dirs:
        sys.exit(f"no crate matches {pattern}; pass the version directory explicitly")
    return os.path.join(dirs[-1], "src", "v1_33")


def scan(src):
    entries, skipped = [], []
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            text = open(os.path.join(root, name), encoding="utf-8").read()
            for ty, body in RESOURCE_RE.findall(text):
                c = dict(CONST_RE.findall(body))
                scope = SCOPE_RE.search(body).group(1)
                if scope == "SubResourceScope" or not c["URL_PATH_SEGMENT"]:
                    skipped.append(f"{c['API_VERSION']} {c['KIND']} ({scope})")
                    continue
                group, plural = c["GROUP"], c["URL_PATH_SEGMENT"]
                struct = re.search(rf"^pub struct {ty} \{{\n(.*?)^\}}", text, re.M | re.S)
                listable = f"impl crate::ListableResource for {ty} " in text
                has_status = bool(struct and re.search(r"^\s*pub status:", struct.group(1), re.M))
                key = (group, plural)
                entries.append({
                    "group": group,
                    "version": c["VERSION"],
                    "kind": c["KIND"],
                    "plural": plural,
                    "singular": c["KIND"].lower(),
                    "namespaced": scope == "NamespaceResourceScope",
                    "listable": listable,
                    # Review types carry a status field but are create-only: no /status.
                    "status": has_status and listable,
                    "scale": key in SCALE,
                    "shortNames": SHORT_NAMES.get(key, []),
                    "categories": ["all"] if key in ALL else ["api-extensions"] if key in API_EXTENSIONS else [],
                    "verbs": VERB_OVERRIDES.get(key, FULL_VERBS if listable else ["create"]),
                })
    return entries, skipped


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", help="k8s-openapi version dir (default: newest 0.29.*, v1_33)")
    ap.add_argument("-o", "--output", help="output file (default: stdout)")
    args = ap.parse_args()
    src = args.src or default_source()
    entries, skipped = scan(src)
    entries.sort(key=lambda e: (e["group"], e["version"], e["kind"]))
    gvks = [(e["group"], e["version"], e["kind"]) for e in entries]
    assert len(set(gvks)) == len(gvks), "duplicate group/version/kind"
    gvrs = [(e["group"], e["version"], e["plural"]) for e in entries]
    assert len(set(gvrs)) == len(gvrs), "duplicate group/version/plural"
    out = "[\n" + ",\n".join(json.dumps(e, separators=(",", ":")) for e in entries) + "\n]\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    print(f"{len(entries)} resources from {src}; skipped: {', '.join(sorted(skipped))}", file=sys.stderr)


if __name__ == "__main__":
    main()
