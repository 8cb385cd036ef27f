"""The committed flow document (table and diagram) is the one the flow file generates."""

import re
import shutil
from pathlib import Path

from ivr import definitions
from ivr.flow_doc import diagram, document, table
from ivr.settings import REPO_ROOT


def test_docs_call_flow_md_is_generated_from_the_flow_file() -> None:
    flow, catalog = definitions.load(REPO_ROOT / "call_flows", REPO_ROOT / "prompts", "support")
    committed = (REPO_ROOT / "docs" / "call_flow.md").read_text(encoding="utf-8")
    assert committed == document(flow, catalog["en"]), "regenerate: ivr flows table > docs/call_flow.md"
    assert "```mermaid\nflowchart TD\n" in committed


def test_the_table_names_every_step_and_where_it_leads() -> None:
    flow, catalog = definitions.load(REPO_ROOT / "call_flows", REPO_ROOT / "prompts", "support")
    text = table(flow, catalog["en"])
    for name in flow.steps:
        assert f"| `{name}` |" in text
    assert "2 (language en) → `main_menu`" in text
    assert "2 (intent = temporary_pin) → `document_number`" in text
    assert "9 digits (document_type = passport), 8 digits (document_type = driving_licence)" in text
    assert "1# → `foreign_document`" in text
    assert "sent → `pin_sent`" in text


def test_the_diagram_draws_every_step_once_and_every_way_on() -> None:
    flow, _ = definitions.load(REPO_ROOT / "call_flows", REPO_ROOT / "prompts", "support")
    text = diagram(flow)
    body = text.split("```mermaid\n", 1)[1].split("```", 1)[0].splitlines()
    assert body[0] == "flowchart TD"
    nodes = [
        line.split("[", 1)[0].split("(", 1)[0].split("{", 1)[0].strip()
        for line in body[1:]
        if "--" not in line
    ]
    assert nodes == [f"s_{name}" for name in flow.steps]
    arrows = [line.strip() for line in body[1:] if "--" in line]
    assert '    s_main_menu -->|"2 (intent = temporary_pin)"| s_document_number' in text
    assert '    s_document_number -->|"1#35;"| s_foreign_document' in text  # "#" as Mermaid's entity
    assert '    s_deliver_pin -->|"sent"| s_pin_sent' in text
    assert '    s_user_id_again -->|"silence"| s_goodbye' in text
    assert "    s_welcome --> s_choose_language" in text
    assert '    s_verified{"verified"}' in text and '    s_goodbye(["goodbye"])' in text
    targets = {re.split(r"[ |]", line)[-1] for line in arrows}
    assert targets <= set(nodes)
    # every step is reached but the first, and the two every menu leads to (said, not drawn)
    d = flow.defaults
    assert set(nodes) - targets == {f"s_{flow.start}", f"s_{d.agent_step}", f"s_{d.too_many_tries_step}"}


def test_flows_check_fails_on_a_stale_flow_document(tmp_path: Path, monkeypatch, capsys) -> None:
    """On a copy of the repository's flow, prompts and document (tests never write the real one:
    other tests read it meanwhile)."""
    from ivr import cli, settings

    repo = tmp_path / "repo"
    for part in ("call_flows", "prompts", "docs"):
        shutil.copytree(REPO_ROOT / part, repo / part)
    monkeypatch.setattr(settings, "REPO_ROOT", repo)
    monkeypatch.setenv("IVR_FLOWS_DIR", str(repo / "call_flows"))
    monkeypatch.setenv("IVR_PROMPTS_DIR", str(repo / "prompts"))
    assert cli.main(["flows", "check"]) == 0
    doc = repo / "docs" / "call_flow.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace("s_pin_sent", "s_pin_gone", 1), encoding="utf-8")
    assert cli.main(["flows", "check"]) == 1
    assert "call_flow.md is stale" in capsys.readouterr().err
