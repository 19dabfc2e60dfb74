import torch

from stable_audio_kit.objective import VObjective, cfg_combine, drop_context, make_scheduler, null_context


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


def test_cfg_dropout_and_combination():
    ctx, mask = torch.randn(6, 3, 2) + 5, torch.tensor([[1, 0, 1]]).bool().expand(6, 3)
    dropped = torch.tensor([True, False, False, True, False, False])
    out, out_mask = drop_context(ctx, mask, dropped)
    assert (out[dropped] == 0).all() and out_mask[dropped].all()
    torch.testing.assert_close(out[~dropped], ctx[~dropped])
    assert (out_mask[~dropped] == mask[~dropped]).all()
    null, null_mask = null_context(ctx[:1], mask[:1])
    assert (null == 0).all() and null_mask.all()
    u, c = torch.zeros(2), torch.ones(2)
    torch.testing.assert_close(cfg_combine(u, c, 1.0), c)
    torch.testing.assert_close(cfg_combine(u, c, 7.0), 7 * c)
