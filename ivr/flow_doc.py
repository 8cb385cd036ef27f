"""The call flow as a Markdown table and a Mermaid diagram, generated from `call_flows/` so
neither can drift.

`ivr flows table > docs/call_flow.md` writes both; `ivr flows check` and a test fail when the
committed copy is stale. Code hosts draw the ```` ```mermaid ```` block as a picture.
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

# The shape of each kind of step in the diagram (Mermaid flowchart node syntax).
SHAPES = {
    "menu": ('["', '"]'),
    "input": ('["', '"]'),
    "question": ('["', '"]'),
    "say": ('("', '")'),
    "action": ('[["', '"]]'),
    "branch": ('{"', '"}'),
    "hangup": ('(["', '"])'),
    "agent": ('[/"', '"/]'),
}


def document(flow: Flow, language: Language) -> str:
    """docs/call_flow.md: the table, then the diagram."""
    return table(flow, language) + "\n" + diagram(flow)


def diagram(flow: Flow) -> str:
    """The flow as a Mermaid flowchart: one node a step (its shape says its kind), one arrow a
    way on, labelled with the key, outcome or case that takes it."""
    d = flow.defaults
    lines = [
        "## Diagram",
        "",
        f"Every menu and input also leads to `{d.agent_step}` on `{d.agent_key}` and to",
        f"`{d.too_many_tries_step}` after {d.max_tries} failures (not drawn). Shapes: menu, input or",
        "question a box; said a rounded box; action a double box; branch a diamond; goodbye a",
        "stadium; agent a parallelogram.",
        "",
        "```mermaid",
        "flowchart TD",
    ]
    for name, step in flow.steps.items():
        opening, closing = SHAPES[step.type]
        lines.append(f"    {_node(name)}{opening}{_label(name)}{closing}")
    for name, step in flow.steps.items():
        for label, target in _arrows(step):
            arrow = f' -->|"{_label(label)}"| ' if label else " --> "
            lines.append(f"    {_node(name)}{arrow}{_node(target)}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def _arrows(step: Step) -> list[tuple[str, str]]:
    """(label, target) of every way on from the step."""
    arrows: list[tuple[str, str]] = []
    match step:
        case MenuStep():
            arrows = [(key + _sets(choice), choice.next) for key, choice in step.options.items()]
        case InputStep():
            arrows = [(f"digits {step.finish_on_key}", step.next)]
            arrows += [(f"{key}{step.finish_on_key}", choice.next) for key, choice in step.options.items()]
        case QuestionStep():
            arrows = [("answer", step.next)]
        case ActionStep():
            arrows = list(step.outcomes.items())
        case BranchStep():
            arrows = list(step.cases.items())
        case SayStep():
            arrows = [("", step.next)]
    if isinstance(step, MenuStep | InputStep | QuestionStep) and step.on_no_input:
        arrows.append(("silence", step.on_no_input))
    return arrows


def _node(name: str) -> str:
    """A node ID no step name can make clash with Mermaid's words (`end`, `graph`, ...)."""
    return "s_" + "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)


def _label(text: str) -> str:
    """Text inside a quoted Mermaid label: `#` and quotes as Mermaid's entity codes."""
    return text.replace("#", "#35;").replace('"', "#quot;")


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
