"""Cut the operations the line uses out of Twilio's OpenAPI description of its 2010-04-01 API.

The full description (twilio/twilio-oai, `spec/json/twilio_api_v2010.json`, about 1.9 MB) is not
part of this repository; the tests need only a few operations. This script keeps those operations,
their path items' metadata and every component they refer to, as a valid OpenAPI document of its
own (so a mock server such as Prism can serve it too):

    python tests/data/twilio_oai/extract.py path/to/twilio_api_v2010.json

It writes `twilio_api_v2010_subset.json` beside itself. Re-run it after updating the source, and
commit both. Twilio's description is MIT-licensed: see LICENSE beside this file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "twilio_api_v2010_subset.json"
# (path, method): what the line sends to Twilio, or soon will.
OPERATIONS = (
    ("/2010-04-01/Accounts/{AccountSid}/Messages.json", "post"),  # CreateMessage: the PIN's SMS
    ("/2010-04-01/Accounts/{AccountSid}/Queues/{QueueSid}/Members/{CallSid}.json", "post"),  # UpdateMember
    ("/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", "post"),  # UpdateCall
)
METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _refs(node: Any) -> set[str]:
    """Every `$ref` anywhere inside `node`."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise SystemExit(f"extract: only local references are supported, not {ref}")
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def subset(spec: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with only OPERATIONS and the components they need."""
    paths: dict[str, Any] = {}
    for path, method in OPERATIONS:
        item = spec["paths"][path]
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k not in METHODS})
        kept[method] = item[method]
    components: dict[str, Any] = {"securitySchemes": spec["components"]["securitySchemes"]}
    pending, done = _refs(paths), set()
    while pending:
        ref = pending.pop()
        done.add(ref)
        _, _, kind, name = ref.split("/", 3)
        target = _resolve(spec, ref)
        components.setdefault(kind, {})[name] = target
        pending |= _refs(target) - done
    for kind in components:
        components[kind] = dict(sorted(components[kind].items()))
    used_tags = {tag for path, method in OPERATIONS for tag in paths[path][method].get("tags", [])}
    tags = [tag for tag in spec.get("tags", []) if tag["name"] in used_tags]
    head = {k: spec[k] for k in ("openapi", "info", "servers", "security") if k in spec}
    return {**head, "tags": tags, "paths": paths, "components": components}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="Twilio's twilio_api_v2010.json")
    args = parser.parse_args(argv)
    spec = json.loads(args.source.read_text(encoding="utf-8"))
    text = json.dumps(subset(spec), indent=2, ensure_ascii=False) + "\n"
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text)} characters, {len(OPERATIONS)} operations)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
