"""Both generators through the loop's seam: ``propose(space, context, n)``."""

import numpy as np
import pytest

from generators.base import GenerationContext, Generator
from generators.inverse import (
    GENERATORS,
    CINNGenerator,
    FlowTraining,
    InverseDesignError,
    JanusGenerator,
    JanusTraining,
    MatDesINNe,
)
from lab_adapters.simlab.physics.dataset import microstructure_dataset
from matloop.space import ParametricSpace
from matloop.types import Candidate, CandidateKind

SPACE = ParametricSpace.model_validate(
    {
        "parameters": [
            {"name": "a", "type": "continuous", "bounds": [0, 1]},
            {"name": "b", "type": "continuous", "bounds": [0, 2]},
            {"name": "n", "type": "integer", "bounds": [1, 5]},
        ]
    }
)


def _measured(n=120, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = {"a": float(rng.uniform(0, 1)), "b": float(rng.uniform(0, 2)), "n": int(rng.integers(1, 6))}
        out.append((Candidate.point(p, origin="seed"), p["a"] + p["b"]))
    return out


def test_registry_and_protocol():
    assert set(GENERATORS) == {"cinn", "janus"}
    assert isinstance(CINNGenerator(), Generator)
    assert isinstance(JanusGenerator(), Generator)


@pytest.mark.parametrize("ranking_members", [MatDesINNe.ranking_members, 0])
def test_cinn_proposes_in_bounds_new_candidates_near_target(ranking_members):
    measured = _measured()
    known = {measured[0][0].fingerprint}
    ctx = GenerationContext(
        seed=1, known_fingerprints=known, target={"property": "y", "goal": "target", "target": 1.5, "tolerance": 0.2},
        extra={"measurements": measured},
    )
    gen = CINNGenerator(
        training=FlowTraining(n_blocks=3, hidden=32, epochs=20, batch_size=32), localise_steps=30, surrogate_epochs=60,
        ranking_members=ranking_members,
    )
    cands = gen.propose(SPACE, ctx, 6)
    assert len(cands) == 6
    for c in cands:
        assert c.kind is CandidateKind.POINT and c.origin == "cinn"
        assert SPACE.violations(c.params) == []
        assert isinstance(c.params["n"], int)
        assert c.fingerprint not in known
        assert abs(c.params["a"] + c.params["b"] - 1.5) < 0.4
    assert len({c.fingerprint for c in cands}) == 6


def test_cinn_refuses_a_negative_ranking_ensemble():
    with pytest.raises(InverseDesignError, match="ranking_members"):
        CINNGenerator(ranking_members=-1)


def test_cinn_names_what_is_missing():
    gen = CINNGenerator()
    with pytest.raises(InverseDesignError, match="context.target"):
        gen.propose(SPACE, GenerationContext(extra={"measurements": _measured(20)}), 2)
    with pytest.raises(InverseDesignError, match=r"measurements\[0\] value 'x' is not a number"):
        gen.propose(SPACE, GenerationContext(extra={"measurements": [(_measured(1)[0][0], "x")]}), 2)
    with pytest.raises(InverseDesignError, match=r"janus: context.extra\['measurements'\] is missing"):
        JanusGenerator().propose(object(), GenerationContext(target={"goal": "maximize"}), 2)
    # No measurements yet (the loop's initial design): a cold-start design, visibly labelled.
    cold = gen.propose(SPACE, GenerationContext(target={"goal": "target", "target": 1.0}), 3)
    assert [c.origin for c in cold] == ["cinn-coldstart"] * 3


def test_janus_proposes_two_phase_images():
    data = microstructure_dataset(48, size=16, seed=2, length_scale_range=(1.5, 3.0))
    measured = [
        (Candidate(kind=CandidateKind.IMAGE, image=img.tolist(), origin="seed"), float(k))
        for img, k in zip(data.images, data.conductivity, strict=True)
    ]
    ctx = GenerationContext(seed=0, target={"goal": "maximize"}, extra={"measurements": measured})
    gen = JanusGenerator(training=JanusTraining(width=8, epochs=4, batch_size=16))
    cands = gen.propose(object(), ctx, 3)
    assert 1 <= len(cands) <= 3
    for c in cands:
        assert c.kind is CandidateKind.IMAGE and c.origin == "janus"
        arr = np.array(c.image)
        assert arr.shape == (16, 16) and set(np.unique(arr)) <= {0.0, 1.0}


def test_loop_shaped_target_and_cold_start():
    # The loop passes {property: objective}; with too few measurements cinn proposes a Sobol design.
    ctx = GenerationContext(
        seed=0,
        target={"y": {"property": "y", "goal": "target", "target": 1.0, "tolerance": 0.1}},
        extra={"measurements": _measured(5)},
    )
    cands = CINNGenerator().propose(SPACE, ctx, 8)
    assert len(cands) == 8 and all(c.origin == "cinn-coldstart" for c in cands)
    assert all(SPACE.violations(c.params) == [] for c in cands)


def test_template_generator_builds_from_its_settings():
    from agent.spec import load_campaign
    from generators.registry import build_generator

    campaign = load_campaign("agent/templates/microstructure.yaml")
    gen = build_generator(campaign.generator, campaign.space)
    assert gen.name == "cinn" and gen.training.epochs == 40 and gen.max_candidates == 500
    measured = [
        (Candidate.point({"volume_fraction": float(f), "length_scale": float(s)}), 1 + 9 * float(f))
        for f, s in np.random.default_rng(0).uniform([0.1, 2.0], [0.9, 8.0], size=(40, 2))
    ]
    ctx = GenerationContext(target={o.property: o.model_dump(mode="json") for o in campaign.objectives},
                            extra={"measurements": measured})
    quick = CINNGenerator(epochs=5, localise_steps=20, surrogate_epochs=30)
    cands = quick.propose(campaign.space, ctx, 4)
    assert len(cands) == 4 and all(campaign.space.violations(c.params) == [] for c in cands)


def test_janus_score_model_chooses_designs_the_solver_confirms():
    """With ``score_model`` the thresholds come from a CNN ensemble on the binary images, not the latent head.

    A small Janus trained on 96 images misses the target by tens of per cent through its head; the
    ensemble (with the coarse-grid prior) reads the thresholded image itself. Graded by the full solver.
    """
    from lab_adapters.simlab.physics import effective_conductivity

    data = microstructure_dataset(96, size=32, seed=2, length_scale_range=(1.5, 4.0))
    measured = [
        (Candidate(kind=CandidateKind.IMAGE, image=img.tolist(), origin="seed"), float(k))
        for img, k in zip(data.images, data.conductivity, strict=True)
    ]
    errors: dict[str, list[float]] = {"head": [], "score": []}
    for target in (3.0, 5.0):
        ctx = GenerationContext(seed=0, target={"goal": "target", "target": target}, extra={"measurements": measured})
        for name, score in (("head", None), ("score", {"physics_prior": True, "k0": 1.0, "k1": 10.0,
                                                       "epochs": 10, "width": 8})):
            gen = JanusGenerator(training=JanusTraining(width=8, epochs=10, batch_size=16), score_model=score)
            for c in gen.propose(object(), ctx, 4):
                errors[name].append(abs(effective_conductivity(np.array(c.image), 1.0, 10.0) / target - 1))
    assert np.median(errors["score"]) < np.median(errors["head"]) / 3, errors
    assert np.median(errors["score"]) < 0.05, errors


def test_janus_score_model_refuses_values_it_cannot_learn():
    data = microstructure_dataset(12, size=16, seed=2)
    measured = [(Candidate(kind=CandidateKind.IMAGE, image=img.tolist(), origin="seed"), -1.0) for img in data.images]
    ctx = GenerationContext(seed=0, target={"goal": "target", "target": 1.0}, extra={"measurements": measured})
    gen = JanusGenerator(training=JanusTraining(width=8, epochs=2, batch_size=16), score_model={"epochs": 1})
    with pytest.raises(ValueError, match="must be positive"):
        gen.propose(object(), ctx, 2)
