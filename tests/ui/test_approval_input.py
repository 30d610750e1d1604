"""The approval form without a browser: its per-batch schema, its description, and the approver rule.

The browser test (``test_cockpit_browser.py``) drives the same form in the Prefect UI; these check the parts a
browser cannot see quickly: what the Prefect server validates a submitted form against (the JSON schema), the
description's content for a batch in a real database, and that ``matloop approve --by`` refuses the names the form
refuses, in one sentence.
"""

from __future__ import annotations

import jsonschema
import pytest
from prefect.input.run_input import create_v2_schema
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from agent.loop.context import LoopContext
from agent.policy.approval import APPROVER_MAX_LENGTH, Decision
from agent.spec import Campaign, parse_campaign
from agent.store import Database
from agent.store.models import BatchItemRecord, BatchRecord, CampaignRecord, CandidateRecord
from cli import app
from cli.campaign_files import template_text
from flows.approval_form import _acquisition_lines, batch_form
from flows.inputs import ApprovalInput, batch_approval_input, input_problems
from tests.cli.conftest import build_hand_made_campaign

BLANK_OR_LONG = ["", "   ", "\t", "x" * (APPROVER_MAX_LENGTH + 100)]


def _schema(model: type[ApprovalInput]) -> dict:
    """The schema Prefect stores for the form (and validates a submitted form against, on the server)."""
    return create_v2_schema(model.__name__, model_base=model)


def test_the_form_offers_only_the_batch_s_own_ids() -> None:
    form = batch_approval_input([17, 21, 5], "the batch")
    drop = _schema(form)["properties"]["drop"]
    assert drop["type"] == "array" and drop["items"]["enum"] == [17, 21, 5]  # the UI renders a multi-select
    assert form._description == "the batch"  # what Prefect shows above the form
    answer = form(approver=" ada ", drop=[21], note="  ")
    assert answer.to_decision() == Decision(approver="ada", drop=[21], note=None)
    with pytest.raises(ValidationError) as refused:
        form(approver="ada", drop=[99])
    assert input_problems(refused.value) == "drop.0: Input should be 17, 21 or 5"


def test_the_stored_schema_accepts_the_cli_s_answer_and_refuses_a_blank_name() -> None:
    schema = _schema(batch_approval_input([3, 4], "d"))
    # what `matloop approve` sends to a waiting run (flows/approval.py send_decision): a plain ApprovalInput
    cli_answer = ApprovalInput(approver="ada", drop=[4]).model_dump(include={"approver", "decision", "drop", "note"})
    jsonschema.validate(cli_answer, schema)
    for bad in ({"approver": "   "}, {"approver": ""}, {"approver": "ada", "drop": [7]},
                {"approver": "x" * (APPROVER_MAX_LENGTH + 1)}, {"approver": "ada\nbob"}, {"approver": "a\x00"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        with pytest.raises(ValidationError):  # what the server lets through, the flow accepts, and vice versa
            ApprovalInput(**bad) if bad.get("drop") is None else batch_approval_input([3, 4], "d")(**bad)
    for good in ("ada", " Ada Lovelace ", "Grace B. Hopper (QA)", "x" * APPROVER_MAX_LENGTH):
        jsonschema.validate({"approver": good}, schema)
        assert ApprovalInput(approver=good).approver == good.strip()


def test_a_rejection_from_the_form_with_ids_chosen_still_rejects() -> None:
    answer = batch_approval_input([3, 4], "d")(approver="ada", decision="reject", drop=[4])
    assert answer.to_decision() == Decision(approve=False, approver="ada", drop=[])


@pytest.mark.parametrize("name", BLANK_OR_LONG)
def test_a_blank_or_overlong_approver_is_refused_with_one_sentence(name: str) -> None:
    for make in (lambda: ApprovalInput(approver=name), lambda: Decision(approver=name)):
        with pytest.raises(ValidationError) as refused:
            make()
        message = input_problems(refused.value)
        assert message.startswith("approver: the approver's name ") and "\n" not in message


def test_approve_by_refuses_blank_and_overlong_names_in_one_sentence(migrated_db_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    build_hand_made_campaign(migrated_db_url)
    monkeypatch.setenv("MATLOOP_DATABASE_URL", migrated_db_url)
    runner = CliRunner()
    for name in BLANK_OR_LONG:
        result = runner.invoke(app, ["approve", "oer-demo", "--by", name])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --by: the approver's name "), result.output
        assert "Traceback" not in result.output
    db = Database(migrated_db_url)
    with db.reading() as session:  # nothing was stored: the batch still waits
        assert session.scalars(select(BatchRecord.status).order_by(BatchRecord.id)).all() == ["dispatched", "proposed"]
    db.dispose()


def _hand_made_batch(db_url: str) -> tuple[Database, Campaign, int, int]:
    """The hand-made OER campaign's database, its spec, its id and its proposed batch's id."""
    build_hand_made_campaign(db_url)
    db = Database(db_url)
    spec = parse_campaign(template_text("oer"))
    with db.reading() as session:
        campaign_id = session.scalar(select(CampaignRecord.id).where(CampaignRecord.name == spec.name))
        batch_id = session.scalars(select(BatchRecord.id).where(BatchRecord.status == "proposed")).one()
    return db, spec, campaign_id, batch_id


def test_the_description_shows_the_batch_with_units_reasons_cost_budget_and_links(migrated_db_url: str) -> None:
    db, spec, campaign_id, batch_id = _hand_made_batch(migrated_db_url)
    with db.reading() as session:
        ids = [item.candidate_id for item in session.get(BatchRecord, batch_id).items]
    ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters={})
    form = batch_form(ctx, batch_id, ui_url="http://prefect.example:4200")
    db.dispose()
    text = form.markdown
    assert form.candidate_ids == ids
    assert f"**{spec.name} · batch {batch_id}**: 1 candidate waiting" in text
    line = next(line for line in text.splitlines() if line.startswith(f"- **{ids[0]}** · "))
    assert "ni_load=0.5" in line and "fe_load=0.5" in line  # (PostgreSQL's JSONB orders the keys its own way)
    assert line.endswith("predicted 0.4 ± 0.05 V · acquisition -1.5 · why: explore: high std")
    assert "logarithm of the expected improvement" in text  # the template's acquisition is auto -> qLogEI
    assert "**Cost** 1 cost units (1 experiment × 1)" in text
    assert "**budget left** 85 of 88 experiments, 11 of 11 iterations" in text  # three jobs of batch 1 so far
    assert f"[this batch](http://prefect.example:4200/artifacts/key/{spec.name}-batch)" in text


def test_a_batch_mixing_qlogei_and_thompson_picks_explains_each_kind_s_values(migrated_db_url: str) -> None:
    """``auto`` at q>=5 picks a qLogEI head and a Thompson tail: their values are in different units, so the form
    says which picks are which kind instead of explaining them all as the first pick's."""
    db, spec, campaign_id, batch_id = _hand_made_batch(migrated_db_url)
    with db.transaction() as session:
        head = session.get(BatchRecord, batch_id).items[0]
        head.reason = "qlogei: exploit: high predicted utility"
        others = session.scalars(select(CandidateRecord.id).where(CandidateRecord.id != head.candidate_id)).all()
        for rank, candidate_id in enumerate(others[:2], start=1):
            session.add(BatchItemRecord(batch_id=batch_id, candidate_id=candidate_id, rank=rank,
                                        acquisition_value=-0.3 * rank, posterior_mean=0.41, posterior_std=0.04,
                                        reason="thompson: explore: high std"))
        head_id = head.candidate_id
    ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters={})
    text = batch_form(ctx, batch_id).markdown
    db.dispose()
    assert "**Acquisition values** are of different kinds in this batch" in text
    assert f"- 1 pick ({head_id}), qlogei: the logarithm of the expected improvement" in text
    assert f"- 2 picks ({others[0]}, {others[1]}), thompson: the pick's value in one sample" in text
    assert "**Acquisition value:**" not in text


def test_a_batch_of_one_kind_keeps_one_sentence_and_values_without_a_kind_explain_nothing() -> None:
    assert _acquisition_lines([(1, "thompson: x", 0.2), (2, "thompson: y", 0.1)], "auto") == [
        "**Acquisition value:** the pick's value in one sample drawn from the model's posterior (Thompson sampling): "
        "the sample's best are picked, so likely and uncertain candidates both get their turn."]
    assert _acquisition_lines([(1, "posterior mean: exploit", -2.0)], "auto")[0].startswith(
        "**Acquisition value:** the logarithm of the expected improvement over the best result so far (qLogEI)")
    assert _acquisition_lines([(1, "initial design", None)], "auto") == []
