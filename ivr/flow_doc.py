"""The call flow as a Markdown table, generated from `call_flows/` so it cannot drift.

`ivr flows table > docs/call_flow.md` writes it; a test fails when the committed copy is stale.
"""

from __future__ import annotations

from ivr.flows import (
    ActionStep,
    AgentStep,
    BranchStep,
    Choice,
    Flow,
    HangupStep,
    InputStep,
    MenuStep,
    QuestionStep,
    SayStep,
    Step,
)
from ivr.prompts import Language


def table(flow: Flow, language: Language) -> str:
    """One row a step: what the caller hears (in `language`) and where each answer leads."""
    d = flow.defaults
    lines = [
        f"# Call flow `{flow.name}`",
        "",
        f"Generated from `call_flows/{flow.name}.yaml` by `ivr flows table`; do not edit by hand.",
        f"Starts at `{flow.start}`. At every menu and input: silence or a wrong key replays the step",
        f"after a short apology; `{d.repeat_key}` repeats it; `{d.agent_key}` goes to `{d.agent_step}`;",
        f"after {d.max_tries} failures the caller goes to `{d.too_many_tries_step}`.",
        "",
        "| step | kind | the caller hears | leads to |",
        "|---|---|---|---|",
    ]
    for name, step in flow.steps.items():
        heard = " ".join(language.prompts[key] for key in getattr(step, "say", ()))
        lines.append(f"| `{name}` | {step.type} | {_cell(heard)} | {_cell(_exits(step))} |")
    return "\n".join(lines) + "\n"


def _exits(step: Step) -> str:
    match step:
        case MenuStep():
            text = ", ".join(
                f"{key}{_sets(choice)} → `{choice.next}`" for key, choice in step.options.items()
            )
        case InputStep():
            lengths = ", ".join(
                f"{n} digits ({', '.join(f'{k} = {v}' for k, v in sets.items())})"
                for n, sets in step.set_by_length.items()
            )
            text = (
                f"digits, then {step.finish_on_key} (check `{step.check}`{'; ' + lengths if lengths else ''})"
            )
            text += f" → `{step.next}`" + "".join(
                f", {key}{step.finish_on_key}{_sets(choice)} → `{choice.next}`"
                for key, choice in step.options.items()
            )
        case QuestionStep():
            text = f"the answer → `{step.next}`"
        case ActionStep():
            text = f"`{step.action}`: " + ", ".join(f"{o} → `{t}`" for o, t in step.outcomes.items())
        case BranchStep():
            text = f"by {step.by}: " + ", ".join(f"{v} → `{t}`" for v, t in step.cases.items())
        case SayStep():
            text = f"`{step.next}`"
        case HangupStep():
            text = "goodbye (hang up)"
        case AgentStep():
            text = f"the agents' queue (reason {step.reason or 'as recorded'})"
    if isinstance(step, MenuStep | InputStep | QuestionStep) and step.on_no_input:
        text += f"; silence → `{step.on_no_input}`"
    return text


def _sets(choice: Choice) -> str:
    sets = ([f"language {choice.language}"] if choice.language else []) + [
        f"{k} = {v}" for k, v in choice.set.items()
    ]
    return f" ({', '.join(sets)})" if sets else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
