"""Load the call flow and the prompts, and refuse to start if either is broken."""

from __future__ import annotations

from pathlib import Path

from ivr import audio, render
from ivr.actions import outcomes
from ivr.checks import CHECKS
from ivr.errors import DefinitionError
from ivr.flows import Flow, check_flow, load_flow, prompt_keys
from ivr.prompts import Catalog, check_catalog, load_catalog
from ivr.questions import QUESTIONS

# Prompts the code says outside any flow step: the closed hours, the queue, the last resort,
# the hand-over to an agent, and the whisper the agent hears (`whisper_language_<code>` too).
CODE_PROMPTS = frozenset(
    {
        "hours_day",
        "hours_days",
        "queue_position",
        "queue_no_agent",
        "hold",
        "apology",
        "transfer",
        "call_again",
        "goodbye",
    }
    | {"agent_code", "agent_code_wrong", "agent_next_caller", "agent_code_blocked"}
    | {"connecting", "agent_unavailable", "whisper_verified", "whisper_not_verified"}
    | {"whisper_intent_user_id", "whisper_intent_temporary_pin", "whisper_intent_none"}
    | {"whisper_document_passport", "whisper_document_driving_licence"}
)
SMS_TEXTS = frozenset({"temporary_pin"})


def needed_prompts(flow: Flow) -> set[str]:
    return prompt_keys(flow) | CODE_PROMPTS | {f"question_{kind}" for kind in QUESTIONS}


def problems(flow: Flow, catalog: Catalog, path: Path, prompts_dir: Path) -> list[str]:
    """Everything wrong with one flow against the prompts, each naming its file and step."""
    found = [
        f"{path}: {p}"
        for p in check_flow(
            flow,
            actions=outcomes(),
            checks=frozenset(CHECKS),
            languages=frozenset(catalog),
        )
    ]
    whisper = {f"whisper_language_{code}" for code in catalog}
    found += check_catalog(catalog, needed_prompts(flow) | whisper, prompts_dir)
    found += [
        f"{prompts_dir / code}.yaml: sms {key!r} is missing"
        for code, lang in catalog.items()
        for key in sorted(SMS_TEXTS - lang.sms.keys())
    ]
    return found


def load(flows_dir: Path, prompts_dir: Path, flow_name: str) -> tuple[Flow, Catalog]:
    """The named flow and the prompt catalog, after every flow file has been checked."""
    catalog = load_catalog(prompts_dir)
    paths = sorted(flows_dir.glob("*.yaml"))
    flows = {path.stem: (load_flow(path), path) for path in paths}
    found = [p for flow, path in flows.values() for p in problems(flow, catalog, path, prompts_dir)]
    if not found:
        found = audio.problems(catalog, audio.Library.scan(prompts_dir / "audio"))
        found += render.stale(catalog, prompts_dir / "audio")
    if found:
        raise DefinitionError("call flows or prompts are broken:\n  " + "\n  ".join(found))
    if flow_name not in flows:
        raise DefinitionError(f"{flows_dir}: no flow file {flow_name}.yaml")
    return flows[flow_name][0], catalog
