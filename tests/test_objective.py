import torch

from stable_audio_kit.objective import VObjective, cfg_combine
from stable_audio_kit.schedulers import make_scheduler


def test_v_target_reconstructs_clean_latents():
    obj = VObjective(make_scheduler().config)
    x0, noise = torch.randn(4, 3, 10), torch.randn(4, 3, 10)
    t = torch.tensor([0, 250, 500, 999])
    noisy, v = obj.noisy_and_target(x0, noise, t)
    a = obj.schedule.alphas_cumprod[t].sqrt()[:, None, None]
    s = (1 - obj.schedule.alphas_cumprod[t]).sqrt()[:, None, None]
    torch.testing.assert_close(noisy, a * x0 + s * noise)
    torch.testing.assert_close(a * noisy - s * v, x0, atol=1e-5, rtol=1e-5)  # x0 = alpha x_t - sigma v


def test_masked_loss_ignores_padding():
    pred, target = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    target[..., 2:] = 100.0
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    assert VObjective.loss(pred, target, mask).item() == 0.0
    assert VObjective.loss(pred, target).item() > 0


def test_cfg_combination():
    u, c = torch.zeros(2), torch.ones(2)
    torch.testing.assert_close(cfg_combine(u, c, 1.0), c)
    torch.testing.assert_close(cfg_combine(u, c, 7.0), 7 * c)
