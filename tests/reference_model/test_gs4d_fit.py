"""A tiny CPU fit: held-out views improve on the initialisation; the loader follows the widening windows;
the default split never trains on a protocol view."""

from __future__ import annotations

import pytest

from reference_model.gs4d import load_views, preset
from reference_model.gs4d.config import PROTOCOL_VIEWS, SplitConfig
from reference_model.gs4d.fitting import fit
from reference_model.gs4d.runner import render_views, score
from reference_model.gs4d.schedule import build_schedule, research_windows

TINY = dict(init_points=300, hull_resolution=32, coarse_steps=30, window_steps=15, final_steps=45, views_per_step=3,
            max_gaussians=450, densify_from=20, densify_until=80, densify_every=20, neighbour_every=20, sh_degree=1,
            sh_increase_every=30)


@pytest.fixture(scope="module")
def gs4d_tiny_fit(gs4d_sample):
    config = preset("default", split=SplitConfig("custom", train_views=(1, 8, 15)), **TINY)
    train_views, eval_views = config.split.views(21)
    train = load_views(gs4d_sample, train_views)
    evals = load_views(gs4d_sample, eval_views)
    return config, train, evals, fit(train, config, "cpu", progress=False)


def test_tiny_fit_beats_its_initialisation_on_held_out_views(gs4d_tiny_fit):
    config, train, evals, result = gs4d_tiny_fit
    assert set(train.views).isdisjoint(PROTOCOL_VIEWS) and tuple(evals.views) == PROTOCOL_VIEWS
    before = score(render_views(result.initial_model, evals, config.background), evals, config.background)
    after = score(render_views(result.model, evals, config.background), evals, config.background)
    assert after["psnr"] > before["psnr"] + 2.0, (before, after)
    assert after["ssim"] > before["ssim"]
    assert result.steps == sum(s.steps for s in result.stages) and result.images == 3 * result.steps


def test_loader_feeds_the_widening_windows(gs4d_tiny_fit):
    config, _, _, result = gs4d_tiny_fit
    fed = result.fed_frames
    assert [s.name for s in result.stages] == ["coarse", "window0", "final"]
    assert set(fed["coarse"]) == {1} and len(fed["coarse"]) == 30  # the middle frame of 3, one a step
    assert set(fed["window0"]) == {0, 1, 2} and set(fed["final"]) == {0, 1, 2}
    # 3 frames a step (frames_per_step) where the stage has them: 15 and 45 steps.
    assert config.frames_per_step == 3 and len(fed["window0"]) == 15 * 3 and len(fed["final"]) == 45 * 3


def test_schedule_windows_really_widen_and_the_sampler_stays_inside():
    from reference_model.gs4d.schedule import FrameSampler

    # The default has no steps after the windows: its last window already spans the clip.
    default = build_schedule(preset("default"), 25)
    assert default[-1].name == "window5" and default[-1].frames == tuple(range(25))
    config = preset("default", final_steps=100)
    stages = build_schedule(config, 25)
    assert stages[0].frames == (12,) and not stages[0].deform
    spans = [(min(s.frames), max(s.frames)) for s in stages[1:-1]]
    assert spans == [(10, 14), (8, 16), (6, 18), (4, 20), (2, 22), (0, 24)]
    for previous, current in zip(stages[:-1], stages[1:]):
        assert set(previous.frames) < set(current.frames) or current.name == "final"
    sampler = FrameSampler(0)
    for stage in stages:
        drawn = {sampler.frame(stage) for _ in range(400)}
        assert drawn == set(stage.frames)
    # Without the progressive schedule the windows' steps go to the final stage (same total).
    flat = build_schedule(preset("no_progressive", final_steps=100), 25)
    assert [s.name for s in flat] == ["coarse", "final"]
    assert sum(s.steps for s in flat) == sum(s.steps for s in stages)


def test_research_schedule_reproduces_the_released_iteration_counts():
    stages = build_schedule(preset("research"), 25)
    windows = [s for s in stages if s.name.startswith("window")]
    # 4D_optimization/train.py: 3000 coarse, range(25 // 4 + 2) windows of 3000 + 500 * (i // 5), 20000 fine.
    assert stages[0].steps == 3000 and len(windows) == 8
    assert sum(s.steps for s in windows) == 25500 and stages[-1].steps == 20000
    assert research_windows(25, 12, 2, 8)[:6] == [(10, 14), (8, 16), (6, 18), (4, 20), (2, 22), (0, 24)]
    assert preset("research").neighbour_k == 8 and preset("research").lambda_ssim == 0.0


def test_splits_never_mix_unless_asked_by_name():
    train, evals = SplitConfig().views(21)
    assert train == (1, 3, 4, 6, 8, 10, 11, 13, 15, 17, 18, 20) and evals == PROTOCOL_VIEWS
    with pytest.raises(ValueError, match="overlap"):
        SplitConfig("custom", train_views=(0, 1, 2)).views(21)
    assert SplitConfig("custom", train_views=(0, 1), allow_overlap=True).views(21)[0] == (0, 1)
    assert SplitConfig("all").views(21)[0] == tuple(range(21))
    held = SplitConfig("heldout_times")
    assert 0 not in held.train_frames(25) and 24 not in held.train_frames(25) and 1 in held.train_frames(25)
    with pytest.raises(ValueError, match="did you mean 'final_steps'"):
        preset("default", final_step=3)


def test_research_preset_keeps_the_released_learning_rates():
    r = preset("research")
    # arguments/__init__.py + arguments/dnerf/dnerf_default.py of the released code.
    assert (r.lr_deformation, r.lr_deformation_final, r.lr_grid, r.lr_grid_final) == (1.6e-4, 1.6e-6, 1.6e-3, 1.6e-5)
    assert (r.lr_means, r.lr_opacities, r.lr_scales, r.lr_quats, r.lr_sh0) == (1.6e-4, 5e-2, 5e-3, 1e-3, 2.5e-3)
    assert (r.densify_from, r.densify_until, r.opacity_reset_every, r.views_per_step) == (500, 15000, 3000, 1)
    assert r.frames_per_step == 1  # one image a step


def test_frames_per_step_shares_the_views_between_distinct_frames(gs4d_sample):
    from reference_model.gs4d.fitting import _step_groups
    from reference_model.gs4d.schedule import FrameSampler, Stage

    sampler = FrameSampler(0)
    stage = Stage("final", tuple(range(25)), 10, None, True)
    for _ in range(50):
        groups = _step_groups(sampler, stage, 12, 12, 3)
        frames = [f for f, _ in groups]
        views = sorted(int(v) for _, vids in groups for v in vids)
        assert len(set(frames)) == 3 and views == list(range(12))  # every view once, at three times
        assert [len(v) for _, v in groups] == [4, 4, 4]
    # A one-frame stage falls back to one group; asking for more frames than views caps at the views.
    assert len(_step_groups(sampler, Stage("coarse", (12,), 1, None, False), 12, 12, 3)) == 1
    assert len(_step_groups(sampler, stage, 12, 2, 3)) == 2
    # The fit runs with it, counts every image once, and still feeds only the stage's frames.
    config = preset("default", split=SplitConfig("custom", train_views=(1, 8, 15)),
                    **(TINY | dict(frames_per_step=3, coarse_steps=5, window_steps=5, final_steps=5)))
    train = load_views(gs4d_sample, config.split.views(21)[0])
    result = fit(train, config, "cpu", progress=False)
    assert result.images == 3 * result.steps
    assert set(result.fed_frames["coarse"]) == {1} and len(result.fed_frames["final"]) == 3 * 5


def test_batched_times_equal_one_time_at_a_time(gs4d_tiny_fit):
    import torch

    model = gs4d_tiny_fit[3].model
    times = [0.0, 0.5, 1.0]
    with torch.no_grad():
        many = model.gaussians_at_times(times)
        anchors = model.deformed_means_at_times(times)
        p = model.params
        for t, g, m in zip(times, many, anchors):
            # The Gaussians at t written out from the field evaluated at that one time.
            d_means, d_scales, d_quats = model.deformation(p["means"], t)
            expected = {"means": p["means"] + d_means, "quats": torch.nn.functional.normalize(p["quats"] + d_quats, dim=-1),
                        "scales": torch.exp(p["log_scales"] + d_scales), "opacities": torch.sigmoid(p["opacity_logits"]),
                        "sh": torch.cat([p["sh0"], p["shN"]], dim=1)}
            assert not torch.equal(g.means, p["means"])  # the field moved them
            for name, value in expected.items():
                torch.testing.assert_close(getattr(g, name), value, rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(getattr(model.gaussians_at(t), name), value, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(m, expected["means"], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(model.deformed_means(t), expected["means"], rtol=1e-5, atol=1e-6)
