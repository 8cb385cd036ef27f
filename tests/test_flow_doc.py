"""The committed flow table is the one the flow file generates (docs that cannot rot)."""

from ivr import definitions
from ivr.flow_doc import table
from ivr.settings import REPO_ROOT


def test_docs_call_flow_md_is_generated_from_the_flow_file() -> None:
    flow, catalog = definitions.load(REPO_ROOT / "call_flows", REPO_ROOT / "prompts", "support")
    committed = (REPO_ROOT / "docs" / "call_flow.md").read_text(encoding="utf-8")
    assert committed == table(flow, catalog["en"]), "regenerate: ivr flows table > docs/call_flow.md"


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
