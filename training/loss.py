"""StyleGAN2 losses: non-saturating logistic, lazy R1, style mixing, optional path length."""

import numpy as np
import torch
import torch.nn.functional as F


class StyleGAN2Loss:
    """The loss terms of StyleGAN2 for one G/D pair; each method returns a scalar to backprop."""

    def __init__(self, G, D, r1_gamma=0.2, style_mixing_prob=0.9, pl_weight=0.0, pl_decay=0.01, pl_batch_shrink=2):
        self.G = G
        self.D = D
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight = pl_weight
        self.pl_decay = pl_decay
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_mean = torch.zeros([])

    def _c(self, n):
        return torch.zeros(n, self.G.c_dim)

    def mapped_ws(self, z, update_emas=False):
        """ws for z; with probability style_mixing_prob the layers from a random cutoff on come
        from a second latent, so that no layer can rely on its neighbours sharing a style."""
        c = self._c(z.shape[0])
        ws = self.G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            cutoff = torch.randint(1, num_ws, ())
            if torch.rand(()) >= self.style_mixing_prob:
                cutoff = torch.tensor(num_ws)
            other = self.G.mapping(torch.randn_like(z), c, update_emas=False)
            keep = (torch.arange(num_ws) < cutoff).view(1, -1, 1)
            ws = torch.where(keep, ws, other)
        return ws

    def generate(self, z, update_emas=False):
        ws = self.mapped_ws(z, update_emas=update_emas)
        return self.G.synthesis(ws, noise_mode="random", update_emas=update_emas), ws

    def generator_loss(self, z):
        """Non-saturating logistic loss: G wants D to call its images real."""
        fake, _ = self.generate(z)
        return F.softplus(-self.D(fake)).mean()

    def path_length_loss(self, z):
        """Penalise changes in how far the image moves per unit step in w (smooth latent space)."""
        batch = max(z.shape[0] // self.pl_batch_shrink, 1)
        fake, ws = self.generate(z[:batch])
        noise = torch.randn_like(fake) / np.sqrt(fake.shape[2] * fake.shape[3])
        (grads,) = torch.autograd.grad((fake * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()
        self.pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
        return (lengths - self.pl_mean).square().mean() * self.pl_weight

    def discriminator_loss(self, z, real):
        """Logistic loss for D: real images up, generated images down."""
        with torch.no_grad():
            fake, _ = self.generate(z, update_emas=True)
        loss_fake = F.softplus(self.D(fake)).mean()
        loss_real = F.softplus(-self.D(real)).mean()
        return loss_fake + loss_real

    def r1_loss(self, real):
        """R1: the squared gradient of D at real images, which keeps D from sharpening forever."""
        real = real.detach().requires_grad_(True)
        logits = self.D(real)
        (grads,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        return grads.square().sum([1, 2, 3]).mean() * (self.r1_gamma / 2)
