"""Train the embedded default model: a compact StyleGAN2 on procedural faces, on CPU, resumable.

    python -m training.train --out runs/default --minutes 80
    python -m training.train --resume runs/default/ckpt.pt --minutes 60
    python -m training.train --resume runs/default/ckpt.pt --export-only --export assets/default_model.safetensors
"""

import os

# On a shared, oversubscribed CPU, OpenMP threads that spin while waiting for a descheduled
# sibling burnt 6x the CPU per step here (measured); passive waiting fixes that. It has to be
# set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import copy
import dataclasses
import json
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.atomic_write import atomic_output
from training.dataset import FaceDataset
from training.discriminator import Discriminator
from training.loss import StyleGAN2Loss


@dataclasses.dataclass
class TrainConfig:
    """Everything that decides the networks and the optimisation (saved in every checkpoint)."""

    resolution: int = 64
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    # The shipped model's generator: orig (one ToRGB, at the end) with 32 channels everywhere, so that
    # colour reaches the image through the fine styles (docs/default_model.md, "Style mixing").
    g_channel_base: int = 8192
    g_channel_max: int = 32
    g_architecture: str = "orig"
    d_channel_base: int = 1024
    d_channel_max: int = 128
    batch: int = 16
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    r1_gamma: float = 0.2
    r1_interval: int = 16
    style_mixing_prob: float = 0.9
    pl_weight: float = 0.0
    pl_interval: int = 4
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05
    seed: int = 0

    def generator_kwargs(self):
        return dict(
            z_dim=self.z_dim, c_dim=0, w_dim=self.w_dim, img_resolution=self.resolution, img_channels=3,
            mapping_kwargs=dict(num_layers=self.mapping_layers),
            synthesis_kwargs=dict(channel_base=self.g_channel_base, channel_max=self.g_channel_max,
                                  num_fp16_res=0, conv_clamp=None, architecture=self.g_architecture),
        )


def build_generator(cfg):
    """The explorer's own StyleGAN2 Generator class, so the shipped weights load like any other."""
    from models.stylegan2 import Generator

    return Generator(**cfg.generator_kwargs())


def _adam(params, lr, interval):
    # Lazy regularisation runs a term every `interval` steps; shrink lr and betas to match
    # the optimiser statistics of running it every step (StyleGAN2, appendix B).
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)


class Trainer:
    """One G/D pair, its EMA copy, optimisers and counters; step() trains one minibatch."""

    def __init__(self, cfg, G=None, D=None):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.G = G if G is not None else build_generator(cfg)
        self.D = D if D is not None else Discriminator(cfg.resolution, 3, cfg.d_channel_base, cfg.d_channel_max)
        self.G.train().requires_grad_(True)
        self.D.train().requires_grad_(True)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.dataset = FaceDataset(cfg.resolution, seed=cfg.seed)
        self.loss = StyleGAN2Loss(self.G, self.D, r1_gamma=cfg.r1_gamma,
                                  style_mixing_prob=cfg.style_mixing_prob, pl_weight=cfg.pl_weight)
        g_interval = cfg.pl_interval if cfg.pl_weight > 0 else 0
        self.opt_G = _adam(self.G.parameters(), cfg.g_lr, g_interval)
        self.opt_D = _adam(self.D.parameters(), cfg.d_lr, cfg.r1_interval)
        self.step_count = 0
        self.cur_nimg = 0
        self.wall_seconds = 0.0
        self.commands = []
        self.last_losses = {}

    def step(self):
        cfg = self.cfg
        n = cfg.batch
        real = self.dataset.batch(self.step_count, n)
        losses = {}

        # Generator: fool D; every pl_interval steps also the path length penalty.
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        loss_g = self.loss.generator_loss(torch.randn(n, cfg.z_dim))
        loss_g.backward()
        losses["G"] = loss_g.item()
        if cfg.pl_weight > 0 and self.step_count % cfg.pl_interval == 0:
            loss_pl = self.loss.path_length_loss(torch.randn(n, cfg.z_dim))
            (loss_pl * cfg.pl_interval).backward()
            losses["PL"] = loss_pl.item()
        self.opt_G.step()
        self.D.requires_grad_(True)

        # Discriminator: tell real from generated; every r1_interval steps the R1 penalty.
        self.G.requires_grad_(False)
        self.opt_D.zero_grad(set_to_none=True)
        loss_d = self.loss.discriminator_loss(torch.randn(n, cfg.z_dim), real)
        loss_d.backward()
        losses["D"] = loss_d.item()
        if self.step_count % cfg.r1_interval == 0:
            loss_r1 = self.loss.r1_loss(real)
            (loss_r1 * cfg.r1_interval).backward()
            losses["R1"] = loss_r1.item()
        self.opt_D.step()
        self.G.requires_grad_(True)

        self.cur_nimg += n
        self.step_count += 1
        self.update_ema()
        self.last_losses.update(losses)
        return losses

    @torch.no_grad()
    def update_ema(self):
        # Half-life of ema_kimg thousand images, ramped up so early training is not frozen.
        ema_nimg = self.cfg.ema_kimg * 1000
        if self.cfg.ema_rampup:
            ema_nimg = min(ema_nimg, self.cur_nimg * self.cfg.ema_rampup)
        beta = 0.5 ** (self.cfg.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def state_dict(self):
        return {
            "config": dataclasses.asdict(self.cfg),
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "step": self.step_count, "cur_nimg": self.cur_nimg, "wall_seconds": self.wall_seconds,
            "pl_mean": self.loss.pl_mean, "commands": list(self.commands),
            "dataset_params": self.dataset.params, "rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state):
        # The checkpoint's config and data stream win (network shapes must already match).
        self.cfg = checkpoint_config(state)
        self.dataset = FaceDataset(self.cfg.resolution, seed=self.cfg.seed, params=state["dataset_params"])
        self.loss.r1_gamma = self.cfg.r1_gamma
        self.loss.style_mixing_prob = self.cfg.style_mixing_prob
        self.loss.pl_weight = self.cfg.pl_weight
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.step_count = state["step"]
        self.cur_nimg = state["cur_nimg"]
        self.wall_seconds = state["wall_seconds"]
        self.loss.pl_mean = state["pl_mean"]
        self.commands = list(state["commands"])
        torch.set_rng_state(state["rng"])

    def save_checkpoint(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as temp_name:  # never leave a half-written checkpoint behind
            torch.save(self.state_dict(), temp_name)


def checkpoint_config(state):
    """The TrainConfig a checkpoint was made with; checkpoints from before g_architecture were skip."""
    return TrainConfig(**{"g_architecture": "skip", **state["config"]})


def load_trainer(path):
    """A Trainer restored from a checkpoint (the checkpoint's config wins)."""
    # Our own checkpoints hold only tensors and plain data: nothing in them needs code to load.
    state = torch.load(path, map_location="cpu", weights_only=True)
    trainer = Trainer(checkpoint_config(state))
    trainer.load_state_dict(state)
    return trainer


# ---------------------------------------------------------------------------------------------
# Pictures of the generator: sample grids and style-mixing grids.

def _to_uint8(img):
    return ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def fixed_latents(count, z_dim, seed=0):
    return torch.from_numpy(np.random.RandomState(seed).randn(count, z_dim).astype(np.float32))


@torch.no_grad()
def sample_grid(G, rows=8, cols=8, seed=0, truncation_psi=1.0):
    """A rows x cols grid of generated faces from fixed latents, as an HxWx3 uint8 array."""
    z = fixed_latents(rows * cols, G.z_dim, seed)
    img = G(z, torch.zeros(len(z), G.c_dim), truncation_psi=truncation_psi, noise_mode="const")
    tiles = _to_uint8(img)
    h, w = tiles.shape[1:3]
    return tiles.reshape(rows, cols, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)


def style_groups(G):
    """w indices of the coarse (4-8 px), middle (16-32 px) and fine (64 px and up) layers."""
    resolutions = G.synthesis.ws_resolutions  # the paper's grouping, as the explorer's controls use it
    coarse = [i for i, r in enumerate(resolutions) if r <= 8]
    middle = [i for i, r in enumerate(resolutions) if 8 < r <= 32]
    fine = [i for i, r in enumerate(resolutions) if r > 32]
    return coarse, middle, fine


@torch.no_grad()
def mixing_grid(G, source_seeds=(1, 2, 3, 4, 5), dest_seeds=(6, 7, 8, 9), truncation_psi=0.8):
    """Three style-mixing panels side by side (coarse, middle, fine), each with source faces on
    top and destination faces on the left: a cell is its row's face with that panel's group of
    styles taken from its column's source."""
    c = torch.zeros(1, G.c_dim)

    def ws_of(seed):
        return G.mapping(fixed_latents(1, G.z_dim, seed), c, truncation_psi=truncation_psi)

    def draw(ws):
        return _to_uint8(G.synthesis(ws, noise_mode="const"))[0]

    res = G.img_resolution
    blank = np.full((res, res, 3), 255, np.uint8)
    gap = np.full(((len(dest_seeds) + 1) * res, res // 2, 3), 255, np.uint8)
    panels = []
    for layers in style_groups(G):
        rows = [[blank] + [draw(ws_of(s)) for s in source_seeds]]
        for d in dest_seeds:
            ws_dest = ws_of(d)
            row = [draw(ws_dest)]
            for s in source_seeds:
                mixed = ws_dest.clone()
                mixed[:, layers] = ws_of(s)[:, layers]
                row.append(draw(mixed))
            rows.append(row)
        if panels:
            panels.append(gap)
        panels.append(np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0))
    return np.concatenate(panels, axis=1)


def colour_palette(img, bins=4):
    """Each image's share of pixels in each of bins**3 RGB cells: its colours, wherever they are."""
    cells = ((img.clamp(-1, 1) + 1) / 2 * bins).floor().clamp(0, bins - 1).long()
    index = (cells[:, 0] * bins + cells[:, 1]) * bins + cells[:, 2]
    return torch.stack([torch.bincount(i.flatten(), minlength=bins ** 3).float() / i.numel() for i in index])


def edge_map(img):
    """Each image's colour-gradient magnitudes, centred and scaled to unit norm: where its edges are."""
    dx = (img[:, :, :-1, 1:] - img[:, :, :-1, :-1]).norm(dim=1)
    dy = (img[:, :, 1:, :-1] - img[:, :, :-1, :-1]).norm(dim=1)
    edges = (dx + dy).flatten(1)
    edges = edges - edges.mean(1, keepdim=True)
    return edges / edges.norm(dim=1, keepdim=True).clamp_min(1e-8)


def colour_distance(a, b):
    """L1 distance of the colour palettes: 0 for the same colours, whatever the shapes."""
    return (colour_palette(a) - colour_palette(b)).abs().sum(1)


def shape_distance(a, b):
    """1 - correlation of the edge maps: 0 for edges in the same places, whatever their colours."""
    return 1 - (edge_map(a) * edge_map(b)).sum(1)


@torch.no_grad()
def style_mixing_shares(G, pairs=24, seed=5):
    """What each style group (coarse, middle, fine) carries from a source face to a destination.

    For `pairs` destination/source pairs, the destination takes one group's styles from the
    source. Per group and per measure ("colour": colour palettes; "shape": edge maps):
    "share" is the mixed face's distance from the destination as a fraction of the source's own
    (1 = the group carries all of it, 0 = none), and "closer_to_source" is the fraction of pairs
    whose mixed face is nearer the source than the destination.
    """
    ws = G.mapping(fixed_latents(2 * pairs, G.z_dim, seed), torch.zeros(2 * pairs, G.c_dim))
    dest, src = ws[:pairs], ws[pairs:]

    def draw(w):
        return G.synthesis(w, noise_mode="const").clamp(-1, 1)

    img_dest, img_src = draw(dest), draw(src)
    shares = {}
    for name, layers in zip(("coarse", "middle", "fine"), style_groups(G)):
        mixed = dest.clone()
        mixed[:, layers] = src[:, layers]
        img_mixed = draw(mixed)
        shares[name] = {}
        for measure, distance in (("colour", colour_distance), ("shape", shape_distance)):
            # A ratio of means: pairs whose faces barely differ do not blow the figure up.
            share = distance(img_mixed, img_dest).mean() / distance(img_src, img_dest).mean().clamp_min(1e-8)
            closer = (distance(img_mixed, img_src) < distance(img_mixed, img_dest)).float().mean()
            shares[name][measure] = {"share": round(share.item(), 3), "closer_to_source": round(closer.item(), 3)}
    return shares


def save_png(array, path, scale=1):
    image = Image.fromarray(array)
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


# ---------------------------------------------------------------------------------------------
# Export of the shipped model.

def export_model(trainer, out_path):
    """Write G_ema as safetensors + JSON manifest + sample grid + style-mixing grid next to it."""
    from models.loader import save_discriminator_safetensors, save_safetensors

    out_path = Path(out_path)
    stem = out_path.with_suffix("")
    G = copy.deepcopy(trainer.G_ema).eval().requires_grad_(False)
    manifest = {
        "name": "StyleScope default model: procedural stylised faces",
        "architecture": f"stylegan2 ({trainer.cfg.g_architecture} generator, residual discriminator)",
        "generator_kwargs": trainer.cfg.generator_kwargs(),
        "train_config": dataclasses.asdict(trainer.cfg),
        "dataset": {"module": "training.dataset", "seed": trainer.cfg.seed, "params": trainer.dataset.params},
        "images_shown": trainer.cur_nimg,
        "kimg": round(trainer.cur_nimg / 1000, 3),
        "steps": trainer.step_count,
        "wall_time_seconds": round(trainer.wall_seconds, 1),
        "wall_time_hours": round(trainer.wall_seconds / 3600, 3),
        "commands": trainer.commands,
        "torch_version": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "sample_grid": stem.name + "_grid.png",
        "mixing_grid": stem.name + "_mixing.png",
        "dataset_grid": stem.name + "_dataset.png",
        "style_mixing_shares": style_mixing_shares(G),
    }
    save_safetensors(G, out_path, extra_metadata={"manifest": json.dumps(manifest)})
    # Its D ships beside it: the projector's discriminator-feature loss (models.loader.load_discriminator).
    save_discriminator_safetensors(trainer.D.eval(), str(stem) + "_D.safetensors")
    manifest["file_bytes"] = out_path.stat().st_size
    Path(str(stem) + ".json").write_text(json.dumps(manifest, indent=2) + "\n")
    save_png(sample_grid(G, 6, 8), str(stem) + "_grid.png", scale=2)
    save_png(mixing_grid(G), str(stem) + "_mixing.png", scale=2)
    save_png(sample_grid_of_reals(trainer.dataset, 6, 8), str(stem) + "_dataset.png", scale=2)
    return manifest


# ---------------------------------------------------------------------------------------------
# Command line.

def parse_args(argv=None):
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/default", help="run folder: log, sample grids, ckpt.pt")
    p.add_argument("--resume", help="checkpoint to continue from (its network config wins)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this much wall time")
    p.add_argument("--kimg", type=float, default=None, help="stop once this many thousand images were shown")
    p.add_argument("--export", help="write the G_ema as this .safetensors (+ manifest, grids) at the end")
    p.add_argument("--export-only", action="store_true", help="with --resume: export and exit")
    p.add_argument("--snap-minutes", type=float, default=5.0, help="checkpoint and sample grid interval")
    p.add_argument("--backup-dir", default=None, help="also copy every checkpoint here (outside the repo)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-every", type=int, default=20, help="log line interval, in steps")
    for field in dataclasses.fields(TrainConfig):
        p.add_argument("--" + field.name.replace("_", "-"), type=type(getattr(defaults, field.name)),
                       default=getattr(defaults, field.name))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python -m training.train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if args.resume:
        trainer = load_trainer(args.resume)
        print(f"resumed {args.resume}: step {trainer.step_count}, kimg {trainer.cur_nimg / 1000:.1f}", flush=True)
    else:
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
        trainer = Trainer(cfg)
    if args.export_only:
        if not args.export:
            raise SystemExit("--export-only needs --export PATH")
        print(json.dumps(export_model(trainer, args.export), indent=2))
        return 0
    trainer.commands.append(command)
    # `kill` (SIGTERM) stops as gracefully as Ctrl-C: the finally in train() saves a checkpoint.
    signal.signal(signal.SIGTERM, _stop_on_signal)
    try:
        train(trainer, args)
    except KeyboardInterrupt:
        print(f"stopped at kimg {trainer.cur_nimg / 1000:.2f}; checkpoint saved in {args.out}", flush=True)
    if args.export:
        export_model(trainer, args.export)
        print(f"exported {args.export}", flush=True)
    return 0


def _stop_on_signal(signum, frame):
    raise KeyboardInterrupt


def train(trainer, args):
    """Run steps until the time or image budget is spent, logging, snapshotting and checkpointing."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.txt", "a")
    n_params = sum(p.numel() for p in trainer.G.parameters())
    print(f"G {n_params / 1e6:.2f}M params, D {sum(p.numel() for p in trainer.D.parameters()) / 1e6:.2f}M; "
          f"config {dataclasses.asdict(trainer.cfg)}", file=log, flush=True)
    start = time.time()
    session_start_wall = trainer.wall_seconds
    last_snap = time.time()
    window_start, window_nimg = time.time(), trainer.cur_nimg

    def done():
        if args.minutes is not None and time.time() - start >= args.minutes * 60:
            return True
        return args.kimg is not None and trainer.cur_nimg >= args.kimg * 1000

    def snapshot():
        kimg = trainer.cur_nimg / 1000
        save_png(sample_grid(trainer.G_ema), out / f"fakes_{int(kimg):06d}.png", scale=2)
        trainer.save_checkpoint(out / "ckpt.pt")
        if args.backup_dir:
            Path(args.backup_dir).mkdir(parents=True, exist_ok=True)
            with atomic_output(Path(args.backup_dir) / "ckpt.pt") as temp_name:
                shutil.copyfile(out / "ckpt.pt", temp_name)

    if trainer.step_count == 0:
        save_png(sample_grid(trainer.G_ema), out / "fakes_init.png", scale=2)
        save_png(sample_grid_of_reals(trainer.dataset), out / "reals.png", scale=2)
    try:
        while not done():
            trainer.step()
            trainer.wall_seconds = session_start_wall + (time.time() - start)
            if trainer.step_count % args.log_every == 0:
                rate = (trainer.cur_nimg - window_nimg) / max(time.time() - window_start, 1e-9)
                window_start, window_nimg = time.time(), trainer.cur_nimg
                losses = "  ".join(f"{k} {v:.3f}" for k, v in sorted(trainer.last_losses.items()))
                line = (f"kimg {trainer.cur_nimg / 1000:8.2f}  step {trainer.step_count:6d}  img/s {rate:5.1f}  "
                        f"{losses}  wall {trainer.wall_seconds / 60:6.1f} min")
                print(line, flush=True)
                print(line, file=log, flush=True)
            if time.time() - last_snap >= args.snap_minutes * 60:
                snapshot()
                last_snap = time.time()
    finally:
        snapshot()
        log.close()


def sample_grid_of_reals(dataset, rows=8, cols=8):
    tiles = _to_uint8(dataset.batch(10**6, rows * cols))
    h, w = tiles.shape[1:3]
    return tiles.reshape(rows, cols, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)


if __name__ == "__main__":
    sys.exit(main())
