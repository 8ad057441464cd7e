"""A conditional diffusion pipeline: the follow-up knee generated from the baseline knee.

The pipeline composes three parts, as diffusers' pipelines do:

- a *space* the process runs in: ``to_space`` (images [B,1,H,W] in [0, 1] ->
  [B, C, h, w]) and ``from_space`` (back), given by the subclass — the frozen
  VQ-VAE's standardised latent (oaviz.models.latent_diffusion) or the pixels;
- the denoiser ``net`` (oaviz.models.diffusion_unet), called as
  ``net(x_t, t, cond)`` with the baseline in process space as the condition;
- the ``scheduler`` (oaviz.models.diffusion_process.GaussianDiffusion).

Only the U-Net (and the channel standardisers, fitted once) is trained and
saved. ``target="follow_up"`` diffuses the follow-up itself;
``target="change"`` diffuses y = S(follow-up − baseline), S the per-channel
standardiser of the change: a follow-up mostly *is* its baseline, so
generating the change keeps the knee's own anatomy and spends the model on
what progresses. With ``register_visits`` the training follow-ups are first
registered onto their baselines (oaviz.data.registration), so the change is
disease, not repositioning, and generated futures share today's pose.

Batches: ``image`` = baseline, ``image_next`` = follow-up, each [B,1,H,W] in
[0, 1] (a pair of visits of one subject and side).
"""

from __future__ import annotations

import torch

from oaviz.data.augment import real_acquisition
from oaviz.data.registration import register_follow_up
from oaviz.errors import DataError
from oaviz.models.base import LossOutput, OAModel
from oaviz.models.diffusion_process import GaussianDiffusion
from oaviz.models.diffusion_unet import DiffusionUNet
from oaviz.models.standardise import ChannelStandardiser, rename_legacy_keys


class DiffusionPipeline(OAModel):
    """Space + U-Net + scheduler; training loss, sampling in process space, futures as images."""

    batch_kind = "visit_pairs"
    clip: tuple[float, float] | None = None         # clamp of the predicted x₀ while sampling (process space)

    def __init__(self, config, channels: int):
        super().__init__(config)
        self.channels = channels
        self.net = DiffusionUNet(channels, channels, channels, width=config.width, mults=config.mults,
                                 res_blocks=config.res_blocks, attention=config.attention, dropout=config.dropout)
        self.scheduler = GaussianDiffusion(config.num_steps, config.schedule)
        if config.target == "change":
            self.change_stats = ChannelStandardiser(channels)
            # checkpoints written before the standardiser was one module
            rename_legacy_keys(self, {"change_mean": "change_stats.mean", "change_std": "change_stats.std",
                                      "change_stats_initialised": "change_stats.initialised"})

    # -- the space (subclasses)
    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B,1,H,W] in [0,1] -> the space the process runs in [B, C, h, w]."""
        raise NotImplementedError

    def from_space(self, y: torch.Tensor) -> torch.Tensor:
        """Process space -> images [B,1,H,W] in [0,1]."""
        raise NotImplementedError

    @property
    def change_stats_initialised(self) -> torch.Tensor:
        return self.change_stats.initialised

    # -- what the process generates
    def target_from(self, now: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """What the process generates, from baseline and follow-up in process space [B, C, h, w]."""
        if self.config.target == "follow_up":
            return nxt
        d = nxt - now
        self.change_stats.fit_once(d)
        return self.change_stats(d)

    def follow_up_from(self, now: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Inverse of ``target_from``: a generated target -> the follow-up in process space."""
        if self.config.target == "follow_up":
            return y
        mean, std = self.change_stats.stats(y)
        return now + y * std + mean                  # summed in this order: the same futures as before the split

    # -- training
    def training_pair(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(x₀ the process learns to generate, the condition), both [B, C, h, w]."""
        if "image_next" not in batch:
            raise DataError(f"{self.model_type} needs batches of visit pairs: 'image' (baseline) and "
                            "'image_next' (follow-up); this batch has no 'image_next'")
        nxt_img = batch["image_next"]
        if self.config.register_visits and "landmarks" in batch and "landmarks_next" in batch:
            nxt_img = register_follow_up(nxt_img, batch["image"], batch["landmarks_next"], batch["landmarks"])
        now_img = batch["image"]
        if self.config.augment and self.training:      # one re-acquisition per pair: both images move together
            both = real_acquisition(torch.cat([now_img, nxt_img], 1), noise=0.0)
            now_img, nxt_img = both[:, :1], both[:, 1:]
        cond = self.to_space(now_img)
        return self.target_from(cond, self.to_space(nxt_img)), cond

    def loss(self, batch, step: int = 0) -> LossOutput:
        x0, cond = self.training_pair(batch)
        mse = self.scheduler.training_loss(self.net, x0, cond)
        return LossOutput(mse, {"mse_v": mse.detach()})

    # -- sampling
    @torch.no_grad()
    def sample_space(self, image: torch.Tensor, n_samples: int = 1, steps: int | None = None, eta: float = 0.0,
                     seed: int | None = None, generator: torch.Generator | None = None,
                     chunk: int = 64) -> torch.Tensor:
        """n follow-ups per baseline in process space: [B, n, C, h, w]."""
        if generator is None:
            # Without a seed, draw one from the global RNG (so torch.manual_seed still makes runs repeatable).
            seed = int(torch.randint(0, 2 ** 62, (1,)).item()) if seed is None else int(seed)
            generator = torch.Generator().manual_seed(seed)
        cond = self.to_space(image).repeat_interleave(n_samples, dim=0)
        x_T = torch.randn(cond.shape, generator=generator)
        out = []
        for i in range(0, len(cond), chunk):
            out.append(self.scheduler.ddim_sample(self.net, cond[i:i + chunk], steps or self.config.sample_steps,
                                                  eta=eta, generator=generator, x_T=x_T[i:i + chunk], clip=self.clip))
        y = self.follow_up_from(cond, torch.cat(out))
        return y.view(image.shape[0], n_samples, *y.shape[1:])

    @torch.no_grad()
    def sample_future(self, image: torch.Tensor, n_samples: int = 1, steps: int | None = None, eta: float = 0.0,
                      seed: int | None = None, generator: torch.Generator | None = None,
                      chunk: int = 64) -> torch.Tensor:
        """Generated follow-ups of baselines image [B,1,H,W]: [B, n, 1, H, W] in [0, 1].

        With ``residual_decode`` a future is today's image plus the decoded change,
        image + from_space(generated) − from_space(to_space(image)): what the space
        blurs or shifts in every image (the joint line, fine texture) cancels, so the
        futures keep today's detail and differ from it only where the model changed it.
        """
        y = self.sample_space(image, n_samples, steps, eta, seed, generator, chunk)
        b, n = y.shape[:2]
        return self._as_future_of(image, self.from_space(y.flatten(0, 1)).view(b, n, *image.shape[1:]))

    @torch.no_grad()
    def decode_as_future(self, image: torch.Tensor, follow_up: torch.Tensor) -> torch.Tensor:
        """A given follow-up [B,1,H,W] of baselines image [B,1,H,W] put through the process space and built
        into a future the way generated ones are: [B,1,H,W]. With the real (registered) follow-up this is a
        perfect generator's future, so it bounds what the space lets any generated future show."""
        return self._as_future_of(image, self.reconstruct(follow_up)[:, None])[:, 0]

    def _as_future_of(self, image: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Decoded follow-ups [B, n, 1, H, W] of image [B,1,H,W] -> futures [B, n, 1, H, W] (residual or as decoded)."""
        if self.config.residual_decode:
            return (image[:, None] + decoded - self.reconstruct(image)[:, None]).clamp(0, 1)
        return decoded

    def describe_futures(self) -> str:
        """How a generated future image is built from today's, in one or two plain sentences."""
        c = self.config
        if not c.residual_decode:
            return "Each future is decoded from the generated latent alone."
        learned = (" The model learned that change from follow-ups registered onto their baselines."
                   if c.register_visits else "")
        return ("Each future is today's image plus the change the model generated, decode(future) − decode(today), "
                "so it keeps today's detail and pose." + learned)

    @torch.no_grad()
    def reconstruct(self, image: torch.Tensor) -> torch.Tensor:
        """Today through the process space and back [B,1,H,W] (the space's own reconstruction)."""
        return self.from_space(self.to_space(image))
