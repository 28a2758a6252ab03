"""PyTorch twins of aelab's models, for loading aelab's weights in Python.

    import aelab_torch
    model = aelab_torch.load_run("runs/fashion-mlp")      # config.yaml + model.safetensors
    x_hat = model(x); z = model.encode(x); y = model.decode(z)

Each class names its parameters exactly as aelab does (see the README's table), so
`model.load_state_dict(safetensors.torch.load_file("model.safetensors"))` works, and
`torch.jit.script(model)` gives a module aelab can start from (model.init_from).
Needs torch, safetensors and PyYAML (scripts/setup installs them).
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

ACT = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


class MLP(nn.Module):
    """encoder.{0,2,..} Linear; encoder_mu/encoder_logvar (VAE); decoder.{0,2,..} Linear."""

    variational: torch.jit.Final[bool]
    sigmoid: torch.jit.Final[bool]

    def __init__(self, sample_shape, hidden, latent, activation="relu", latent_activation="none",
                 output="sigmoid", variational=False):
        super().__init__()
        self.sample_shape = list(sample_shape)
        features = 1
        for d in sample_shape:
            features *= d
        sizes = [features] + list(hidden)
        enc = []
        for a, b in zip(sizes, sizes[1:]):
            enc += [nn.Linear(a, b), ACT[activation]()]
        self.variational = variational
        if variational:
            self.encoder_mu = nn.Linear(sizes[-1], latent)
            self.encoder_logvar = nn.Linear(sizes[-1], latent)
        else:
            enc += [nn.Linear(sizes[-1], latent), ACT[latent_activation]()]
        self.encoder = nn.Sequential(*enc)
        back = [latent] + list(hidden)[::-1] + [features]
        dec = []
        for i, (a, b) in enumerate(zip(back, back[1:])):
            dec.append(nn.Linear(a, b))
            if i + 2 < len(back):
                dec.append(ACT[activation]())
        self.decoder = nn.Sequential(*dec)
        self.sigmoid = output == "sigmoid"

    def encode(self, x):
        h = self.encoder(torch.flatten(x, 1))
        if self.variational:
            return self.encoder_mu(h)
        return h

    def decode(self, z):
        y = self.decoder(z).reshape([-1] + self.sample_shape)
        return torch.sigmoid(y) if self.sigmoid else y

    def forward(self, x):
        return self.decode(self.encode(x))


class Conv(nn.Module):
    """encoder.{0,3,..} Conv2d; encoder_fc or encoder_mu/encoder_logvar; decoder_fc;
    decoder.{0,3,..,3n} (nearest) or decoder.{0,2,..,2n} (transposed)."""

    variational: torch.jit.Final[bool]
    sigmoid: torch.jit.Final[bool]
    has_fc: torch.jit.Final[bool]

    def __init__(self, sample_shape, channels, latent=None, kernel=3, activation="relu",
                 latent_activation="none", output="sigmoid", upsample="nearest", variational=False):
        super().__init__()
        c_in, h, w = sample_shape
        self.sample_shape = list(sample_shape)
        pad = kernel // 2
        enc, sizes, prev = [], [(h, w)], c_in
        for c in channels:
            enc += [nn.Conv2d(prev, c, kernel, padding=pad), ACT[activation](), nn.MaxPool2d(2, ceil_mode=True)]
            sh, sw = sizes[-1]
            sizes.append(((sh + 1) // 2, (sw + 1) // 2))
            prev = c
        self.encoder = nn.Sequential(*enc)
        lh, lw = sizes[-1]
        flat = prev * lh * lw
        self.map = (prev, lh, lw)
        self.variational = variational
        self.has_fc = latent is not None
        if latent is not None:
            if variational:
                self.encoder_mu = nn.Linear(flat, latent)
                self.encoder_logvar = nn.Linear(flat, latent)
            else:
                self.encoder_fc = nn.Linear(flat, latent)
            self.decoder_fc = nn.Linear(latent, flat)
        self.latent_act = ACT[latent_activation]()
        self.act = ACT[activation]()
        rev = list(channels)[::-1]
        n = len(rev)
        dec, prev = [], rev[0]
        for j, c in enumerate(rev):
            target, frm = sizes[n - 1 - j], sizes[n - j]
            if upsample == "nearest":
                dec += [nn.Conv2d(prev, c, kernel, padding=pad), ACT[activation](), nn.Upsample(size=target, mode="nearest")]
            else:
                op = target[0] - (2 * frm[0] - 1)
                dec += [nn.ConvTranspose2d(prev, c, 3, stride=2, padding=1, output_padding=op), ACT[activation]()]
            prev = c
        dec.append(nn.Conv2d(prev, c_in, kernel, padding=pad))
        self.decoder = nn.Sequential(*dec)
        self.sigmoid = output == "sigmoid"

    def encode(self, x):
        h = torch.flatten(self.encoder(x), 1)
        if self.variational:
            return self.encoder_mu(h)
        if self.has_fc:
            h = self.encoder_fc(h)
        return self.latent_act(h)

    def decode(self, z):
        h = self.act(self.decoder_fc(z)) if self.has_fc else z
        c, lh, lw = self.map
        y = self.decoder(h.reshape([-1, c, lh, lw]))
        return torch.sigmoid(y) if self.sigmoid else y

    def forward(self, x):
        return self.decode(self.encode(x))


def build(model_cfg, sample_shape):
    """A model from the `model:` section of an aelab experiment (a dict)."""
    m = dict(model_cfg)
    kind = m["kind"]
    common = dict(activation=m.get("activation", "relu"), output=m.get("output", "sigmoid"))
    if kind in ("mlp", "vae"):
        return MLP(sample_shape, m.get("hidden", []), m["latent"], latent_activation=m.get("latent_activation", "none"),
                   variational=kind == "vae", **common)
    if kind in ("conv", "conv_vae"):
        return Conv(sample_shape, m.get("channels", [16, 8, 8]), m.get("latent"), kernel=m.get("kernel", 3),
                    latent_activation=m.get("latent_activation", "none"), upsample=m.get("upsample", "nearest"),
                    variational=kind == "conv_vae", **common)
    raise ValueError(f"no PyTorch twin for model kind {kind!r}")


def load_run(run_dir):
    """The trained model of an aelab run directory, in evaluation mode."""
    import yaml
    from safetensors.torch import load_file

    with open(os.path.join(run_dir, "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    with open(os.path.join(run_dir, "summary.json")) as f:
        shape = json.load(f)["sample_shape"]
    model = build(cfg["model"], shape)
    model.load_state_dict(load_file(os.path.join(run_dir, "model.safetensors")))
    return model.eval()
