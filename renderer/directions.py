"""Directions worth sliding: SeFa's closed-form factorisation, StyleSpace channels, and directions learned from labelled examples."""

import dataclasses
import re

import numpy as np
import torch

from models import style_space
from renderer.request import mix_indices

# StyleSpace statistics (each style channel's mean and spread) from this many mapped random z,
# fixed seed: the same every time, kept per network (Renderer.derived). A std from 2000 samples is
# within about 1.6% of the population's.
STYLE_SAMPLES = 2000
STYLE_STATISTICS = "stylespace statistics"
EXAMPLE_SPREAD_FLOOR = 0.05  # sigmas: a few examples that happen to agree closely do not rank infinitely high


# ---------------------------------------------------------------- SeFa (Shen & Zhou 2021)


def sefa_layers(synthesis, layers="all"):
    """(the w indices a layer choice covers, the style layers those ws feed) for SeFa: 'all',
    a group ('coarse', 'middle', 'fine') or indices ('4-7', '0,2')."""
    num_ws = len(synthesis.ws_resolutions)
    indices = list(range(num_ws)) if layers in ("", "all") else mix_indices(layers, synthesis.ws_resolutions)
    chosen = [(name, affine, index) for name, affine, index in style_space.style_layers(synthesis) if index in indices]
    if not chosen:
        raise ValueError(f"sefa: the ws {layers!r} feed no style layer of this network")
    return indices, chosen


def sefa_directions(synthesis, layers="all"):
    """(directions [w_dim, w_dim] as unit rows, their eigenvalues), strongest first: the eigenvectors
    of A^T A, where A stacks the chosen style layers' affine weights (gain applied) with each
    style channel's row scaled to unit length, as the paper's closed form has it (ToRGB left out)."""
    _, chosen = sefa_layers(synthesis, layers)
    matrix = torch.cat([style_space.affine_matrix(affine).cpu() for _, affine, _ in chosen])
    matrix = matrix / matrix.norm(dim=1, keepdim=True).clamp_min(1e-12)
    # The product in float32 (a 1024 px network's A is 8704 x 512), the small eigenproblem in float64.
    values, vectors = torch.linalg.eigh((matrix.T @ matrix).double())  # ascending
    return vectors.flip(1).T.numpy(), values.flip(0).numpy()


def sefa_rows(synthesis, layers, index, directions=None):
    """Direction `index` as request rows: [1, w_dim] (every w) for 'all', else [num_ws, w_dim] with
    the direction on the chosen ws and zeros elsewhere. directions: sefa_directions' result, if known."""
    if directions is None:
        directions, _ = sefa_directions(synthesis, layers)
    if not 0 <= index < len(directions):
        raise ValueError(f"sefa: direction {index} is outside 0-{len(directions) - 1}")
    if layers in ("", "all"):
        return directions[index][None]
    indices, _ = sefa_layers(synthesis, layers)
    rows = np.zeros((len(synthesis.ws_resolutions), directions.shape[1]))
    rows[indices] = directions[index]
    return rows


def sefa_array(synthesis, layers, count):
    """The CLI's file: [count, w_dim] for 'all', else [count, num_ws, w_dim] with unused ws zero."""
    return np.stack([sefa_rows(synthesis, layers, k) for k in range(count)]) if layers not in ("", "all") \
        else sefa_directions(synthesis, layers)[0][:count]


def sefa_direction_rows(renderer, request, layers, index):
    """sefa_rows for the request's network (on the renderer's thread; the factorisation is kept per
    network and layer choice)."""
    _, G = renderer.load(request)
    found, _ = renderer.derived(request, ("sefa", layers), lambda G: sefa_directions(G.synthesis, layers))
    return sefa_rows(G.synthesis, layers, index, found)


# ---------------------------------------------------------------- StyleSpace (Wu et al. 2021)


def style_statistics(renderer, request):
    """{style layer: (mean [C], std [C])} float64 of the styles of STYLE_SAMPLES mapped random z
    (psi 1, random classes on a conditional network): computed once per network and kept."""
    return renderer.derived(request, STYLE_STATISTICS, _style_statistics)


def _style_statistics(G):
    """The affines are linear in w, so each channel's mean is the affine of w's mean and its variance
    is diag(A Cov(w) A^T): the statistics of the mapped z's w, carried through every affine
    (a 1024 px StyleGAN2's 8704 channels for the price of one matrix product per layer)."""
    generator = torch.Generator().manual_seed(0)
    device = G.mapping.w_avg.device
    z = torch.randn([STYLE_SAMPLES, G.z_dim], generator=generator).to(device)
    c = torch.zeros([STYLE_SAMPLES, G.c_dim], device=device)
    if G.c_dim:
        c[torch.arange(STYLE_SAMPLES), torch.randint(G.c_dim, [STYLE_SAMPLES], generator=generator).to(device)] = 1
    ws = G.mapping(z, c, truncation_psi=1.0)
    moments = {}  # w index -> (mean, covariance); the mapping gives every index the same w at psi 1

    def w_moments(index):
        same = next((k for k in moments if torch.equal(ws[:, k], ws[:, index])), None)
        if same is None:
            w = ws[:, index].double().cpu()
            centred = w - w.mean(dim=0)
            moments[index] = (w.mean(dim=0), centred.T @ centred / (STYLE_SAMPLES - 1))
            same = index
        return moments[same]

    found = {}
    for name, affine, index in style_space.style_layers(G.synthesis):
        mean_w, covariance = w_moments(index)
        matrix = style_space.affine_matrix(affine).double().cpu()
        mean = style_space.styles_of_rows(affine, mean_w[None].float().to(device))[0].double().cpu()
        variance = ((matrix @ covariance) * matrix).sum(dim=1)
        found[name] = (mean.numpy(), variance.clamp_min(0).sqrt().numpy())
    return found


_CHANNEL = re.compile(r"^\s*([^:\s]+)\s*:\s*(\d+)\s*$")


def parse_channel(text, channels):
    """(layer name, channel) from 'b16.conv0:12' or '3:12' (the 4th style layer) for a network whose
    style layers have `channels` ({name: count}, pass order); ValueError says why not."""
    match = _CHANNEL.match(text or "")
    if not match:
        raise ValueError(f"style channel {text!r}: expected LAYER:CHANNEL, e.g. {next(iter(channels), 'b8.conv0')}:12")
    layer, channel = match.group(1), int(match.group(2))
    names = list(channels)
    if layer.isdigit():
        if int(layer) >= len(names):
            raise ValueError(f"style channel {text!r}: style layers are 0-{len(names) - 1}")
        layer = names[int(layer)]
    if layer not in channels:
        raise ValueError(f"style channel {text!r}: no style layer {layer!r} (they are {', '.join(names[:4])} ...)")
    if channel >= channels[layer]:
        raise ValueError(f"style channel {text!r}: layer {layer} has channels 0-{channels[layer] - 1}")
    return layer, channel


def style_channel_std(renderer, request, layer, channel):
    """That channel's standard deviation over random z: one slider unit."""
    mean, std = style_statistics(renderer, request)[layer]
    return float(std[channel])


def style_offsets_in_sigmas(renderer, request, items):
    """The request's style_offsets from ((layer or index, channel, sigmas), ...) (the CLI's --style)."""
    channels = style_channel_counts(renderer, request)
    offsets = []
    for layer, channel, sigmas in items:
        layer, channel = parse_channel(f"{layer}:{channel}", channels)
        offsets.append((layer, channel, sigmas * style_channel_std(renderer, request, layer, channel)))
    return tuple(offsets)


def style_channel_counts(renderer, request):
    _, G = renderer.load(request)
    return style_space.style_channels(G.synthesis)


def example_channels(renderer, request, seeds, top=10):
    """The style channels whose values the example seeds share most, as the StyleSpace paper ranks
    them: each example's styles in sigmas from the population mean, then per channel |mean| over
    the spread across the examples. [(layer, channel, score, mean in sigmas)], best first."""
    seeds = sorted({int(s) for s in seeds})
    if len(seeds) < 2:
        raise ValueError("find channels: give at least two example seeds")
    stats = style_statistics(renderer, request)
    ws = torch.cat([seed_ws(renderer, request, seed) for seed in seeds])
    _, G = renderer.load(request)
    styles = style_space.styles_of(G.synthesis, ws)
    ranked = []
    for name, values in styles.items():
        mean, std = stats[name]
        normalised = (values.double().cpu().numpy() - mean) / np.maximum(std, 1e-8)
        centre = normalised.mean(axis=0)
        spread = np.maximum(normalised.std(axis=0, ddof=1), EXAMPLE_SPREAD_FLOOR)
        score = np.abs(centre) / spread
        dead = std < 1e-6  # a channel that never changes cannot be what the examples share
        score[dead] = 0.0
        ranked.extend((name, int(c), float(score[c]), float(centre[c])) for c in range(len(score)))
    ranked.sort(key=lambda item: -item[2])
    return ranked[:top]


# ---------------------------------------------------------------- learned directions (InterFaceGAN)


def seed_ws(renderer, request, seed):
    """ws [1, num_ws, w_dim] of one seed at psi 1 on the request's network and class (no mixing,
    directions or StyleSpace edits): the W position an example stands at."""
    plain = dataclasses.replace(request, seeds=((int(seed), 1.0),), seed_xy=None, z=None, w=None, mix_seed=None,
                                mix_w=None, mix_layers=(), w_offset=None, truncation_psi=1.0,
                                truncation_cutoff=None, style_offsets=())
    return renderer.compute_ws(plain)


def seed_w_rows(renderer, request, seeds):
    """[len(seeds), w_dim] float64: each seed's w (the first layer's; at psi 1 every layer has it)."""
    return np.stack([seed_ws(renderer, request, seed)[0, 0].double().cpu().numpy() for seed in seeds])


def fit_direction(positive, negative, orthogonal_to=()):
    """The unit normal [w_dim] of a linear SVM separating positive from negative w rows, pointing
    toward the positives; with orthogonal_to (directions [w_dim]), the part of it orthogonal to
    all of them (InterFaceGAN's conditional manipulation), unit length again."""
    from sklearn.svm import LinearSVC

    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if len(positive) < 1 or len(negative) < 1:
        raise ValueError("learned direction: label at least one positive and one negative example")
    if not (np.isfinite(positive).all() and np.isfinite(negative).all()):
        raise ValueError("learned direction: the examples hold NaN or infinite values")
    samples = np.concatenate([positive, negative])
    labels = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    classifier = LinearSVC(C=1.0, max_iter=20000, random_state=0).fit(samples, labels)
    normal = classifier.coef_[0].astype(np.float64)
    if np.linalg.norm(normal) < 1e-12:
        raise ValueError("learned direction: the examples do not separate")
    normal /= np.linalg.norm(normal)
    others = [np.asarray(d, np.float64).reshape(-1) for d in orthogonal_to]
    if any(not np.isfinite(other).all() or other.shape != normal.shape for other in others):
        raise ValueError(f"learned direction: the directions to be orthogonal to must be {normal.shape[0]} finite values")
    if others:
        basis, _ = np.linalg.qr(np.stack(others, axis=1))  # orthonormal span of the others
        normal = normal - basis @ (basis.T @ normal)
        length = np.linalg.norm(normal)
        if length < 1e-6:
            raise ValueError("learned direction: nothing is left once the other directions are taken out")
        normal /= length
    return normal


def learned_direction(renderer, request, positive_seeds, negative_seeds, orthogonal_to=()):
    """fit_direction on seeds' ws (the CLI's --positive / --negative)."""
    return fit_direction(seed_w_rows(renderer, request, positive_seeds), seed_w_rows(renderer, request, negative_seeds),
                         orthogonal_to)


def image_w_row(renderer, request):
    """The w [w_dim] float64 of the image a request shows (every layer's w averaged: directions,
    mixing and truncation as rendered): an example labelled in the window."""
    return renderer.compute_ws(request)[0].mean(dim=0).double().cpu().numpy()


# ---------------------------------------------------------------- the window's questions (run on the worker thread)


def ws_rows_of(ws):
    """[1, num_ws, w_dim] tensor -> [num_ws, w_dim] float64 numpy."""
    return ws[0].cpu().numpy().astype(np.float64)


def image_ws_rows(renderer, request):
    """The ws [num_ws, w_dim] of the image the request asks for, before its directions (mapping,
    truncation, seed blend and style mixing baked in): a w to freeze and edit."""
    return ws_rows_of(renderer.compute_ws(dataclasses.replace(request, w_offset=None)))


def seed_direction_rows(renderer, request, start, end):
    """The direction [num_ws, w_dim] from seed `start`'s ws to seed `end`'s, at psi 1 on the
    request's network and class: strength 1 carries one face's w to the other's."""
    base = dataclasses.replace(request, seed_xy=None, z=None, w=None, mix_seed=None, mix_w=None, mix_layers=(),
                               w_offset=None, truncation_psi=1.0, truncation_cutoff=None)
    ends = [ws_rows_of(renderer.compute_ws(dataclasses.replace(base, seeds=((int(seed), 1.0),)))) for seed in (start, end)]
    return ends[1] - ends[0]


def toward_seed_rows(renderer, request, seed):
    """The direction [num_ws, w_dim] from the image's ws (before its directions) to seed `seed`'s
    with the request's truncation and class: strength t blends the two ws, 1 reaching the seed's.
    The way to blend a loaded or frozen w with a seed."""
    image = dataclasses.replace(request, w_offset=None)
    target = dataclasses.replace(image, seeds=((int(seed), 1.0),), seed_xy=None, z=None, w=None, mix_seed=None,
                                 mix_w=None, mix_layers=())
    return ws_rows_of(renderer.compute_ws(target)) - ws_rows_of(renderer.compute_ws(image))


def principal_rows(renderer, request, index, layers="all"):
    """Rows [1 or num_ws][w_dim]: principal direction `index` of W (Renderer.principal_directions)
    scaled to one standard deviation, on every layer ('all') or on a group's ws only ('coarse',
    'middle', 'fine', or a mix_layers spec), as GANSpace edits a layer range."""
    components, sigmas = renderer.principal_directions(request)
    if not 0 <= index < len(sigmas):
        raise ValueError(f"principal direction {index}: this network has 0-{len(sigmas) - 1}")
    row = components[index] * sigmas[index]
    if layers == "all":
        return row[None]
    _, G = renderer.load(request)
    rows = np.zeros((G.num_ws, row.shape[0]))
    rows[mix_indices(layers, G.synthesis.ws_resolutions)] = row
    return rows


def find_style_channel(renderer, request, text):
    """(layer, channel, that channel's std) for a 'layer:channel' search (statistics kept per network)."""
    layer, channel = parse_channel(text, style_channel_counts(renderer, request))
    return layer, channel, style_channel_std(renderer, request, layer, channel)


def ranked_example_channels(renderer, request, seeds, top=8):
    """[(layer, channel, score, mean in sigmas, std)] the example seeds share most (StyleSpace's ranking)."""
    found = example_channels(renderer, request, seeds, top)
    return [item + (style_channel_std(renderer, request, *item[:2]),) for item in found]


def save_direction_file(rows, path):
    """A direction as .npy, in the layout the Vectors panel and --direction read ([w_dim] for one row)."""
    from renderer import latent_files

    array = np.asarray(rows, dtype=np.float32)
    return latent_files.save_array(array[0] if array.shape[0] == 1 else array, path)


# ---------------------------------------------------------------- a direction's sweep over seeds


def sweep_grid_requests(base, seeds, steps, start=-1.0, stop=1.0):
    """The figure these papers show: {(row, col): request}, one row per seed, its columns base's
    edits (w_offset and style_offsets) times start .. stop."""
    if steps < 2:
        raise ValueError("a sweep grid needs at least 2 columns")
    if base.w_offset is None and not base.style_offsets:
        raise ValueError("a sweep grid needs a direction or a StyleSpace channel with a strength")
    cells = {}
    for row, seed in enumerate(seeds):
        plain = dataclasses.replace(base, seeds=((int(seed), 1.0),), seed_xy=None, z=None, w=None)
        for col in range(steps):
            cells[(row, col)] = scaled_edits(plain, start + (stop - start) * col / (steps - 1))
    return cells


def scaled_edits(request, factor):
    """request with its w_offset and style_offsets times factor."""
    offset = None if request.w_offset is None else np.asarray(request.w_offset, np.float64) * factor
    styles = tuple((layer, channel, delta * factor) for layer, channel, delta in request.style_offsets)
    return dataclasses.replace(request, w_offset=offset, style_offsets=styles)


# ---------------------------------------------------------------- command line


def parse_style_flag(text):
    """'LAYER:CHANNEL=SIGMAS' (LAYER a style layer's name or index) -> (layer, channel, sigmas)."""
    target, sep, sigmas = (text or "").partition("=")
    layer, colon, channel = target.partition(":")
    try:
        if not (sep and colon and layer.strip()):
            raise ValueError
        value = float(sigmas)
        if not np.isfinite(value):
            raise ValueError
        return layer.strip(), int(channel), value
    except ValueError:
        raise ValueError(f"--style: expected LAYER:CHANNEL=SIGMAS (e.g. b16.conv0:12=5), got {text!r}") from None


def with_style_flags(renderer, request, flags):
    """request with --style flags added to its style_offsets (sigmas of each channel's spread)."""
    if not flags:
        return request
    items = [parse_style_flag(text) for text in flags]
    added = style_offsets_in_sigmas(renderer, request, items)
    return dataclasses.replace(request, style_offsets=tuple(request.style_offsets) + added)


def run_directions_command(args):
    """run_app.py directions: the .npy the Vectors panel and --direction read."""
    from renderer import grids, latent_files
    from renderer.renderer import Renderer
    from renderer.request import RenderRequest

    if not str(args.out).lower().endswith(".npy"):
        raise ValueError(f"--out {args.out}: a direction file ends in .npy")
    request = RenderRequest(pkl=getattr(args, "pkl", None), device=getattr(args, "device", None) or "auto",
                            class_idx=args.class_idx)
    renderer = Renderer()
    _, G = renderer.load(request)
    if args.method == "sefa":
        if args.num < 1:
            raise ValueError("--num: at least 1")
        array = sefa_array(G.synthesis, args.layers, args.num)
    else:
        if not (args.positive and args.negative):
            raise ValueError("--method svm: give --positive and --negative seed lists")
        others = [latent_files.load_direction(path).reshape(-1) for path in args.orthogonal or []]
        for path, other in zip(args.orthogonal or [], others):
            if other.shape[0] != G.w_dim:
                raise ValueError(f"--orthogonal {path}: {other.shape[0]} values, this network's w_dim is {G.w_dim}")
        array = learned_direction(renderer, request, grids.parse_seeds(args.positive),
                                  grids.parse_seeds(args.negative), others)
    latent_files.save_array(array.astype(np.float32), args.out)
    print(f"wrote {args.out} {list(array.shape)}")
    return 0
