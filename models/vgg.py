"""VGG16's convolutional part (Simonyan & Zisserman 2015, configuration D) from a weights file the user has.

Reads torchvision's `vgg16-*.pth` state dict (a torch hub cache holds one) through the safe
unpickler: no code runs. `features_for_distance` gives the five ReLU outputs that LPIPS-style
distances compare (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
"""

import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from models.errors import LoadError, UnsafeFileError

# Output channels of the 13 convolutions; 'M' is a 2x2 max pool (configuration D).
CONFIG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
# torchvision's indices of the convolutions in `features` (ReLUs and pools take the others).
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# The convolution after which each compared ReLU output is taken (0-based among the 13).
DISTANCE_LAYERS = (1, 3, 6, 9, 12)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SIDE = 256  # larger pictures are compared at 256 px, as NVIDIA's projector does


class VGG16Features(torch.nn.Module):
    """The 13 3x3 convolutions with ReLUs and four max pools; `convs.{i}` hold weight and bias."""

    def __init__(self):
        super().__init__()
        convs, in_channels = [], 3
        for item in CONFIG_D:
            if item != "M":
                convs.append(torch.nn.Conv2d(in_channels, item, 3, padding=1))
                in_channels = item
        self.convs = torch.nn.ModuleList(convs)
        self.pool_after = {1, 3, 6, 9}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def features_for_distance(self, img):
        """[N, 3, H, W] in [-1, 1] -> the five compared ReLU outputs."""
        if img.shape[1] == 1:
            img = img.repeat(1, 3, 1, 1)
        if max(img.shape[-2:]) > MAX_SIDE:
            img = F.interpolate(img, size=(MAX_SIDE, MAX_SIDE), mode="area")
        x = ((img + 1) / 2 - self.mean) / self.std
        out = []
        for index, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if index in DISTANCE_LAYERS:
                out.append(x)
                if index == DISTANCE_LAYERS[-1]:
                    break
            if index in self.pool_after:
                x = F.max_pool2d(x, 2)
        return out


def _is_torchscript(path):
    """A TorchScript archive (NVIDIA's vgg16.pt): a zip whose model is code, not a state dict."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_vgg16(path):
    """VGG16 features from torchvision's state dict file; LoadError / UnsafeFileError with one line otherwise."""
    from models.safe_pickle import read_pickle

    path = Path(path)
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    if _is_torchscript(path):
        raise UnsafeFileError(f"{path}: a TorchScript archive (like NVIDIA's vgg16.pt) is a program, which "
                              f"StyleScope does not run; give torchvision's vgg16-397923af.pth instead")
    state = read_pickle(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise LoadError(f"{path}: not a VGG16 state dict (found {type(state).__name__})")
    net = VGG16Features()
    tensors = {}
    for ours, theirs in enumerate(TORCHVISION_CONV_INDICES):
        for kind in ("weight", "bias"):
            key = f"features.{theirs}.{kind}"
            value = state.get(key)
            expected = getattr(net.convs[ours], kind).shape
            if not isinstance(value, torch.Tensor):
                raise LoadError(f"{path}: not torchvision's VGG16 weights (no tensor {key!r})")
            if value.shape != expected:
                raise LoadError(f"{path}: {key} has shape {list(value.shape)}, VGG16 needs {list(expected)}")
            if not torch.isfinite(value).all():
                raise LoadError(f"{path}: {key} holds NaN or infinite values")
            tensors[f"convs.{ours}.{kind}"] = value.to(torch.float32)
    net.load_state_dict({**net.state_dict(), **tensors})
    return net.eval().requires_grad_(False)
