"""The sampler registry: every name builds a v-prediction, trailing-spaced scheduler; swapping keeps the schedule."""

import re

import pytest
import torch

from stable_audio_kit.objective import VObjective
from stable_audio_kit.schedulers import SCHEDULERS, make_scheduler, swap_scheduler

# diffusers' sigma-based schedulers call np.array(tensor, copy=False), which numpy 2 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_name_builds_a_v_prediction_sampler_starting_at_the_last_timestep(name):
    scheduler = make_scheduler(name, num_train_timesteps=100, beta_schedule="linear")
    assert type(scheduler) is SCHEDULERS[name]
    config = scheduler.config
    assert (config.prediction_type, config.timestep_spacing) == ("v_prediction", "trailing")
    assert (config.num_train_timesteps, config.beta_schedule) == (100, "linear")
    scheduler.set_timesteps(10)
    assert int(scheduler.timesteps[0]) == 99


def test_default_is_second_order_unipc_on_the_cosine_schedule():
    scheduler = make_scheduler()
    assert isinstance(scheduler, SCHEDULERS["unipc"])
    config = scheduler.config
    assert (config.solver_order, config.solver_type, config.prediction_type) == (2, "bh2", "v_prediction")
    assert (config.num_train_timesteps, config.beta_schedule) == (1000, "squaredcos_cap_v2")


def test_dpm_solver_plus_plus_is_second_order():
    config = make_scheduler("dpmsolver++").config
    assert (config.algorithm_type, config.solver_order) == ("dpmsolver++", 2)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_swap_keeps_the_noise_schedule_the_objective_trains_on(name):
    original = make_scheduler(num_train_timesteps=200)
    swapped = swap_scheduler(original, name)
    assert type(swapped) is SCHEDULERS[name]
    assert (swapped.config.prediction_type, swapped.config.timestep_spacing) == ("v_prediction", "trailing")
    torch.testing.assert_close(swapped.alphas_cumprod, original.alphas_cumprod)
    torch.testing.assert_close(VObjective(swapped.config).schedule.alphas_cumprod, original.alphas_cumprod)


def test_unknown_name_lists_the_valid_ones():
    message = re.escape(f"unknown scheduler 'nope'; valid names: {sorted(SCHEDULERS)}")
    with pytest.raises(ValueError, match=message):
        make_scheduler("nope")
    with pytest.raises(ValueError, match=message):
        swap_scheduler(make_scheduler(), "nope")
