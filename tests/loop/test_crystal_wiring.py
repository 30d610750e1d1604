"""The loop's wiring for non-parametric campaigns: generator choice, pool stats, initial design, list posteriors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from sqlalchemy import select

from agent.loop import LoopContext, fit, generate, open_iteration
from agent.loop.generate import make_generator
from agent.loop.select import choose
from agent.spec import Campaign, load_campaign
from agent.store.models import PoolRecord
from tests.loop.test_loop import make_ctx

TEMPLATES = Path(__file__).resolve().parents[2] / "agent" / "templates"


def _ctx(sqlite_url: str, spec: Campaign) -> LoopContext:
    return make_ctx(sqlite_url, spec, adapters={})


def test_dft_binaries_generates_and_chooses_through_auto(sqlite_url: str) -> None:
    """The DFT template's crystal space: the funnel generator, the whole (30-decoration) space, a maximin batch."""
    spec = load_campaign(TEMPLATES / "dft-binaries.yaml")
    ctx = _ctx(sqlite_url, spec)
    assert type(make_generator(ctx)).__name__ == "FunnelGenerator"
    iteration = open_iteration(ctx)
    fitted = fit(ctx, iteration.id)
    pool = generate(ctx, iteration.id, fitted)
    assert len(pool) == 30  # 5 cations x 2 anions x 3 prototypes, every one charge-balanced
    assert len({c.fingerprint for c in pool}) == 30
    with ctx.db.reading() as session:
        record = session.scalar(select(PoolRecord))
        assert record is not None and record.stats["funnel"]["valid"] == 30
        assert record.stats["generation"]["drawn"] < 1_000  # stops once the space is exhausted
    picks = choose(ctx, fitted, pool, spec.batch_size, iteration.number)
    assert len(picks) == 2 and picks[0]["candidate"].fingerprint != picks[1]["candidate"].fingerprint
    assert all("initial design (maximin" in p["reason"] for p in picks)
    ctx.db.dispose()


def test_initial_design_of_a_pool_is_spread_and_full(sqlite_url: str) -> None:
    """Maximin over standardised features; topped up at random when features tie, never short."""
    spec = load_campaign(TEMPLATES / "dft-binaries.yaml").model_copy(update={"batch_size": 12})
    ctx = _ctx(sqlite_url, spec)
    iteration = open_iteration(ctx)
    fitted = fit(ctx, iteration.id)
    pool = generate(ctx, iteration.id, fitted)
    picks = choose(ctx, fitted, pool, 12, iteration.number)
    assert len({p["candidate"].fingerprint for p in picks}) == 12
    formulas = {p["candidate"].structure["formula"] for p in picks}
    assert len(formulas) >= 8  # spread over chemistry, not 12 polymorphs of three salts
    assert picks == choose(ctx, fitted, pool, 12, iteration.number)  # deterministic in the seed
    ctx.db.dispose()


def _microstructure(generator: dict[str, Any]) -> Campaign:
    data = load_campaign(TEMPLATES / "microstructure.yaml").model_dump(mode="json")
    data["generator"] = generator
    return Campaign.model_validate(data)


def test_short_names_pick_the_inverse_generators(sqlite_url: str) -> None:
    ctx = _ctx(sqlite_url, _microstructure({"type": "cinn", "settings": {"epochs": 3, "max_candidates": 8}}))
    gen = make_generator(ctx)
    assert gen.name == "cinn" and gen.training.epochs == 3 and gen.max_candidates == 8
    ctx.campaign = _microstructure({"type": "janus", "settings": {"max_candidates": 4}})
    assert make_generator(ctx).name == "janus"
    ctx.campaign = _microstructure({"type": "cinn", "epochs": 5})  # the flat (typed) shape
    assert make_generator(ctx).training.epochs == 5
    with pytest.raises(ValidationError, match="no_such_setting"):  # refused with the spec, before any build
        _microstructure({"type": "cinn", "settings": {"no_such_setting": 1}})
    with pytest.raises(ValidationError, match="unknown generator 'nonesuch'.*cinn, janus"):
        _microstructure({"type": "nonesuch"})
    ctx.db.dispose()


def test_joint_samples_of_a_model_list() -> None:
    """One GP per property (a PosteriorList): each output sampled as its own model would be, then stacked."""
    from botorch.models import SingleTaskGP
    from botorch.models.model import ModelList
    from botorch.posteriors import PosteriorList

    from agent.selection.exact import joint_samples

    torch.manual_seed(0)
    X = torch.rand(12, 3, dtype=torch.double)
    gps = [SingleTaskGP(X, (X.sum(-1, keepdim=True) * k).sin()) for k in (1.0, 3.0)]
    Xq = torch.rand(5, 3, dtype=torch.double)
    model = ModelList(*gps)  # what the surrogates fit for several properties
    assert isinstance(model.posterior(Xq), PosteriorList)
    Z = joint_samples(model, Xq, 64, seed=7)
    assert Z.shape == (64, 5, 2)
    for i, gp in enumerate(gps):
        assert torch.allclose(Z[..., i : i + 1], joint_samples(gp, Xq, 64, seed=7 + i))
    assert torch.allclose(Z.mean(0)[:, 0], gps[0].posterior(Xq).mean.squeeze(-1).detach(), atol=0.2)
