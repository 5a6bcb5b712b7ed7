#!/usr/bin/env bash
# The OpenAPI document (docs/api/openapi.yaml) and the controller's route table
# (weft-controller routes) must describe the same set of (METHOD, PATH) pairs,
# in both directions. Also checks that every $ref in the document resolves and
# that every operation documents a success answer.
# Usage: tests/integration/test_openapi.sh BUILD_DIR   (or WEFT_BUILD=BUILD_DIR)
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-${WEFT_BUILD:-}}
if [ -z "$build" ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
bin=${WEFT_CONTROLLER_BIN:-$build/controller/weft-controller}
spec="$here/../../docs/api/openapi.yaml"
if [ ! -x "$bin" ]; then
    echo "Bail out! not built: $bin (run ninja in the build dir)"
    echo "# 0 passed, 1 failed"
    exit 1
fi
routes=$(mktemp "${TMPDIR:-/tmp}/weft-routes.XXXXXX") || exit 1
trap 'rm -f "$routes"' EXIT
if ! "$bin" routes >"$routes"; then
    echo "Bail out! '$bin routes' failed"
    echo "# 0 passed, 1 failed"
    exit 1
fi

python3 - "$spec" "$routes" <<'PY'
import sys
import yaml

spec_path, routes_path = sys.argv[1], sys.argv[2]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
n = passed = failed = 0


def check(ok, what, details=()):
    global n, passed, failed
    n += 1
    if ok:
        passed += 1
        print(f"ok {n} - {what}")
    else:
        failed += 1
        print(f"not ok {n} - {what}")
        for d in details:
            print(f"#   {d}")


with open(spec_path) as f:
    doc = yaml.safe_load(f)
check(isinstance(doc, dict) and str(doc.get("openapi", "")).startswith("3.0"),
      "document is OpenAPI 3.0")

spec = set()
for path, item in (doc.get("paths") or {}).items():
    for method, op in item.items():
        if method in METHODS:
            spec.add((method.upper(), path))
            codes = [str(c) for c in (op.get("responses") or {})]
            check(any(c.startswith("2") for c in codes),
                  f"{method.upper()} {path} documents a 2xx answer", [f"responses: {codes}"])

server = set()
with open(routes_path) as f:
    for line in f:
        parts = line.split()
        if len(parts) == 2:
            server.add((parts[0], parts[1]))
        elif parts:
            check(False, f"route line is 'METHOD PATH': {line.strip()!r}")
check(len(server) > 0, "weft-controller routes printed routes")

missing = sorted(server - spec)
extra = sorted(spec - server)
check(not missing, "every server route is in openapi.yaml",
      [f"undocumented: {m} {p}" for m, p in missing])
check(not extra, "every openapi.yaml route is served",
      [f"not served: {m} {p}" for m, p in extra])


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def resolves(ref):
    if not ref.startswith("#/"):
        return False
    node = doc
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


bad = sorted({r for r in refs(doc) if not resolves(r)})
check(not bad, "every $ref resolves", [f"dangling: {r}" for r in bad])

print(f"# {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
