"""Deep (torch) detectors: sequence autoencoders over sliding windows and a graph autoencoder over services.

* :class:`LSTMAutoencoder` - encoder LSTM -> latent vector -> decoder LSTM that rebuilds the window.
* :class:`TransformerAutoencoder` - a small ``nn.TransformerEncoder`` (sinusoidal positions, tokens are
  patches of a few steps) encodes the window, mean-pools it to a latent vector, and a second one rebuilds
  the window from it.
* :class:`VAEDetector` - a variational autoencoder over the flattened window (``window=1``: single rows).
* :class:`GraphDetector` - a graph autoencoder (GCN layers, plain torch) over the service dependency graph
  that scores every service at every timestamp at once.

Windows (the three sequence members). Features are standardised with the training mean / std of each
stacked series (``per_series=True``, the default; a series not seen in ``fit``, or an unstacked frame, uses
the stats pooled over all training rows; ``per_series=False`` always uses the pooled ones); constant columns
get a scale of 1. The models themselves are shared by all series. The window ending at row ``t``
holds rows ``t - window + 1 .. t`` of the same series: windows are cut per stacked series (MultiIndex level
0), so they never reach into a neighbouring series. The score of row ``t`` is the reconstruction error of
the window ending at ``t`` (mean squared error over the window's steps and features; for the VAE the
negative ELBO per element, see there). The first ``window - 1`` rows of a series, which have no full
window of their own, reuse the error of the series' first full window (no padding). A series shorter than
``window`` raises :class:`NotEnoughData`, when fitting and when scoring. Fitting trains on at most
``max_windows`` windows drawn at random (without replacement) from the windows starting every ``stride``
rows; scoring always uses every window (stride 1), in batches, without gradients.

Torch state. The trained weights are kept as numpy arrays (``state_``) next to the architecture
(``config_``); the module is rebuilt lazily on the scoring device and not pickled, so a fitted detector
pickles (pickle / joblib / cloudpickle) and loads in a process without a GPU even when trained on one.
``device="auto"`` trains on CUDA when available; scoring falls back to the CPU when CUDA is not there.
Seeding uses ``torch.manual_seed(random_state)`` inside ``torch.random.fork_rng``, so the caller's global
torch RNG is left as it was; on the CPU the same ``random_state`` gives the same scores.

Speed (defaults, 13 series x 10,000 rows x 9 features, 2 uncontended CPU cores): fit (training plus scoring
the training rows) about 10 s for the LSTM, 3.5 s for the transformer, 1 s for the VAE and the graph;
scoring 130,000 rows 2 s or less. On a machine with more runnable processes than cores, OpenMP threads
that spin while they wait can make these several times slower; ``OMP_WAIT_POLICY=PASSIVE`` in the
environment (set before torch loads) avoids that. The thread count is left to torch.
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_random_state
from torch import nn

from training.detectors.base import Detector, NotEnoughData, series_name, series_positions

_SCORE_FLOATS = 1 << 21  # input floats per scoring batch (~8 MB of float32 windows)
_CLIP = 1e6  # standardised values are clipped here so squared errors stay finite in float32


# ---------------------------------------------------------------------------------------------- helpers
def _resolve_device(device, scoring: bool = False) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        if scoring:  # trained on a GPU, scored where there is none
            return torch.device("cpu")
        raise ValueError(f"device={device!r} was asked for but CUDA is not available")
    return dev


def _seed(random_state) -> int:
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))


def _location_scale(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std; a constant (or non-finite) column gets scale 1 instead of 0."""
    mean = np.nanmean(x, axis=axis)
    std = np.nanstd(x, axis=axis)
    ok = np.isfinite(std) & (std > 1e-9 * np.maximum(1.0, np.abs(mean)))
    return np.nan_to_num(mean), np.where(ok, std, 1.0)


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip((x - mean) / scale, -_CLIP, _CLIP).astype(np.float32)


def _sinusoid(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------- modules
class _LSTMAE(nn.Module):
    def __init__(self, n_features: int, window: int, hidden: int, latent: int, n_layers: int = 1):
        super().__init__()
        self.encoder = nn.LSTM(n_features, hidden, num_layers=n_layers, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.from_latent = nn.Linear(latent, hidden)
        self.decoder = nn.LSTM(hidden, hidden, num_layers=n_layers, batch_first=True)
        self.out = nn.Linear(hidden, n_features)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(x)
        z = self.to_latent(h[-1])
        d = torch.tanh(self.from_latent(z)).unsqueeze(1).expand(-1, x.shape[1], -1).contiguous()
        y, _ = self.decoder(d)
        return self.out(y)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.reconstruct(x) - x) ** 2).mean()

    def errors(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.reconstruct(x) - x) ** 2).mean(dim=(1, 2))


class _TransformerAE(nn.Module):
    """Tokens are patches of ``patch`` consecutive steps (the window is left-padded inside the model, by
    repeating its first step, to a multiple of ``patch``; the padding is cut off the reconstruction)."""

    def __init__(self, n_features: int, window: int, hidden: int, latent: int, n_heads: int, n_layers: int,
                 patch: int):
        super().__init__()

        def stack() -> nn.TransformerEncoder:
            layer = nn.TransformerEncoderLayer(hidden, n_heads, dim_feedforward=2 * hidden, dropout=0.0,
                                               batch_first=True)
            return nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

        self.n_features, self.window, self.patch = n_features, window, patch
        self.pad = (-window) % patch
        n_tokens = (window + self.pad) // patch
        self.embed = nn.Linear(n_features * patch, hidden)
        self.register_buffer("pe", _sinusoid(n_tokens, hidden), persistent=False)
        self.encoder = stack()
        self.to_latent = nn.Linear(hidden, latent)
        self.from_latent = nn.Linear(latent, hidden)
        self.decoder = stack()
        self.out = nn.Linear(hidden, n_features * patch)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.pad:
            x = torch.cat([x[:, :1].expand(-1, self.pad, -1), x], dim=1)
        tokens = x.reshape(b, -1, self.patch * self.n_features)
        h = self.encoder(self.embed(tokens) + self.pe)
        z = self.to_latent(h.mean(dim=1))  # the bottleneck: one latent vector per window
        d = self.from_latent(z).unsqueeze(1) + self.pe
        y = self.out(self.decoder(d)).reshape(b, -1, self.n_features)
        return y[:, self.pad:]

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.reconstruct(x) - x) ** 2).mean()

    def errors(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.reconstruct(x) - x) ** 2).mean(dim=(1, 2))


class _VAE(nn.Module):
    def __init__(self, n_features: int, window: int, hidden: int, latent: int, beta: float):
        super().__init__()
        d = n_features * window
        self.d, self.beta = d, float(beta)
        self.enc = nn.Sequential(nn.Linear(d, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 2 * hidden), nn.ReLU(),
                                 nn.Linear(2 * hidden, d))

    def _neg_elbo(self, x: torch.Tensor, sample: bool) -> torch.Tensor:
        flat = x.flatten(1)
        h = self.enc(flat)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        rec = 0.5 * ((self.dec(z) - flat) ** 2).sum(dim=1)
        kl = -0.5 * (1.0 + logvar - mu**2 - logvar.exp()).sum(dim=1)
        return (rec + self.beta * kl) / self.d  # per element, so the learning rate does not depend on d

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self._neg_elbo(x, sample=True).mean()

    def errors(self, x: torch.Tensor) -> torch.Tensor:
        return self._neg_elbo(x, sample=False)


class _GraphAE(nn.Module):
    """Per-node input layer, two GCN layers (A_hat @ H @ W) to a latent per node, per-node MLP decoder."""

    def __init__(self, n_in: int, hidden: int, latent: int):
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.gcn1 = nn.Linear(hidden, hidden)
        self.gcn2 = nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, n_in))

    def reconstruct(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        # x: (batch, node, n_in); adj: (node, node), broadcast over the batch
        h = torch.relu(self.inp(x))
        h = torch.relu(torch.matmul(adj, self.gcn1(h)))
        z = torch.matmul(adj, self.gcn2(h))
        return self.dec(z)

    def loss(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return ((self.reconstruct(x, adj) - x) ** 2).mean()

    def errors(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return ((self.reconstruct(x, adj) - x) ** 2).mean(dim=2)  # (batch, node)


# ---------------------------------------------------------------------------------------------- shared base
class _TorchDetector(Detector):
    """Training loop, seeding, device handling and the lazily rebuilt (never pickled) module."""

    family: ClassVar[str] = "deep"
    min_rows: ClassVar[int] = 40  # the default window (30) + 10; a longer window is checked per series

    # subclasses: _make_module() from self.config_
    def _make_module(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_common(self) -> int:
        window = _positive_int("window", self.window)
        _positive_int("hidden", self.hidden)
        _positive_int("epochs", self.epochs, minimum=0)
        _positive_int("batch_size", self.batch_size)
        _positive_int("stride", self.stride)
        if self.max_windows is not None:
            _positive_int("max_windows", self.max_windows)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        return window

    def _sample_starts(self, starts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.max_windows is not None and len(starts) > self.max_windows:
            starts = np.sort(rng.choice(starts, size=int(self.max_windows), replace=False))
        return starts

    def _train(self, data: torch.Tensor, starts: np.ndarray, gather, extra: tuple, device: torch.device,
               seed: int, rng: np.random.Generator) -> None:
        """Build the module under ``seed``, train it on the windows at ``starts`` (``gather`` cuts them)."""
        devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            net = self._make_module().to(device)
            net.train()
            opt = torch.optim.Adam(net.parameters(), lr=float(self.lr))
            starts_t = torch.as_tensor(starts, dtype=torch.long, device=device)
            losses = []
            for _ in range(int(self.epochs)):
                order = torch.as_tensor(rng.permutation(len(starts)), device=device)
                total = 0.0
                for i in range(0, len(starts), int(self.batch_size)):
                    batch = gather(data, starts_t[order[i: i + int(self.batch_size)]])
                    loss = net.loss(batch, *extra)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                    opt.step()
                    total += float(loss.detach()) * len(batch)
                losses.append(total / max(len(starts), 1))
        net.eval()
        self.train_losses_ = np.array(losses)
        self.n_train_windows_ = len(starts)
        self.state_ = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        self._net_cache = (str(device), net)

    def _module(self, device: torch.device) -> nn.Module:
        cache = self.__dict__.get("_net_cache")
        if cache is not None and cache[0] == str(device):
            return cache[1]
        net = self._make_module()
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state_.items()})
        net.to(device).eval()
        self._net_cache = (str(device), net)
        return net

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_net_cache", None)  # rebuilt from state_ on first use, on whatever device is there
        return state


# ---------------------------------------------------------------------------------------------- windows
def _gather_windows(window: int):
    def gather(data: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(window, device=starts.device)
        return data[starts[:, None] + offsets]  # (batch, window, feature)
    return gather


class _WindowAutoencoder(_TorchDetector):
    """Sliding windows per series, an autoencoder over them, score = error of the window ending at the row."""

    view: ClassVar[str] = "window reconstruction"

    def _check(self) -> int:
        return self._check_common()

    def _stack(self, frame: pd.DataFrame, window: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Standardised rows, series after series; the row positions and first offset of each series."""
        positions = series_positions(frame)
        keys = frame.index.get_level_values(0) if isinstance(frame.index, pd.MultiIndex) else None
        for pos in positions:
            if len(pos) < window:
                which = f"series {keys[pos[0]]!r}" if keys is not None else "the series"
                raise NotEnoughData(f"{type(self).__name__} needs at least window={window} rows per series, "
                                    f"{which} has {len(pos)}")
        x = frame.to_numpy(dtype=float)
        parts = [_standardise(x[pos], *self._stats_for(None if keys is None else keys[pos[0]]))
                 for pos in positions]
        z = np.concatenate(parts) if parts else np.zeros((0, x.shape[1]), dtype=np.float32)
        offsets = np.cumsum([0] + [len(p) for p in positions])[:-1]
        return z, positions, offsets

    def _learn_stats(self, frame: pd.DataFrame) -> None:
        x = frame.to_numpy(dtype=float)
        self.mean_, self.scale_ = _location_scale(x)
        self.series_stats_ = {}
        if self.per_series and isinstance(frame.index, pd.MultiIndex):
            keys = frame.index.get_level_values(0)
            for pos in series_positions(frame):
                self.series_stats_[keys[pos[0]]] = _location_scale(x[pos])

    def _stats_for(self, key) -> tuple[np.ndarray, np.ndarray]:
        """The series' own training mean / scale; the pooled ones for unseen (or unstacked) series."""
        return self.series_stats_.get(series_name(key), (self.mean_, self.scale_)) if key is not None else \
            (self.mean_, self.scale_)

    def _fit(self, frame: pd.DataFrame) -> None:
        window = self._check()
        seed = _seed(self.random_state)
        rng = np.random.default_rng(seed)
        self._learn_stats(frame)
        z, positions, offsets = self._stack(frame, window)
        starts = np.concatenate([off + np.arange(0, len(p) - window + 1, int(self.stride))
                                 for p, off in zip(positions, offsets)])
        starts = self._sample_starts(starts, rng)
        self.config_ = self._config(frame.shape[1], window)
        device = _resolve_device(self.device)
        data = torch.from_numpy(z).to(device)
        self._train(data, starts, _gather_windows(window), (), device, seed, rng)

    def _score(self, frame: pd.DataFrame) -> np.ndarray:
        window = int(self.config_["window"])
        out = np.empty(len(frame))
        if len(frame) == 0:
            return out
        z, positions, offsets = self._stack(frame, window)
        device = _resolve_device(self.device, scoring=True)
        net = self._module(device)
        starts = np.concatenate([off + np.arange(len(p) - window + 1) for p, off in zip(positions, offsets)])
        errors = np.empty(len(starts))
        data = torch.from_numpy(z).to(device)
        gather = _gather_windows(window)
        step = max(1, _SCORE_FLOATS // (window * z.shape[1]))
        starts_t = torch.as_tensor(starts, dtype=torch.long, device=device)
        with torch.inference_mode():
            for i in range(0, len(starts), step):
                errors[i: i + step] = net.errors(gather(data, starts_t[i: i + step])).double().cpu().numpy()
        k = 0
        for pos in positions:
            n = len(pos) - window + 1
            e = errors[k: k + n]
            out[pos[: window - 1]] = e[0]  # rows before the first full window reuse its error
            out[pos[window - 1:]] = e
            k += n
        return out


class LSTMAutoencoder(_WindowAutoencoder):
    """LSTM encoder -> ``latent`` vector -> LSTM decoder rebuilding the window (``window`` x features).

    Score of a row: mean squared reconstruction error (over steps and features, standardised units) of
    the window ending at that row.
    """

    def __init__(self, features=None, window=30, hidden=32, latent=8, n_layers=1, epochs=3, batch_size=256,
                 lr=1e-3, max_windows=20000, stride=1, per_series=True, alpha=1e-3, device="auto",
                 random_state=0):
        self.features = features
        self.window = window
        self.hidden = hidden
        self.latent = latent
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_windows = max_windows
        self.stride = stride
        self.per_series = per_series
        self.alpha = alpha
        self.device = device
        self.random_state = random_state

    def _check(self) -> int:
        _positive_int("latent", self.latent)
        _positive_int("n_layers", self.n_layers)
        return super()._check()

    def _config(self, n_features: int, window: int) -> dict:
        return {"n_features": n_features, "window": window, "hidden": int(self.hidden), "latent": int(self.latent),
                    "n_layers": int(self.n_layers)}

    def _make_module(self) -> nn.Module:
        return _LSTMAE(**self.config_)


class TransformerAutoencoder(_WindowAutoencoder):
    """Transformer autoencoder over the window. Tokens are non-overlapping patches of ``patch`` steps
    (``patch=1``: one token per step) embedded to width ``hidden`` plus a sinusoidal positional encoding;
    an ``nn.TransformerEncoder`` (``n_layers`` layers of ``n_heads`` heads) encodes them, mean-pools them to a
    ``latent`` vector, and a second stack rebuilds every patch from that vector plus the positional
    encoding. A window that is not a multiple of ``patch`` is left-padded inside the model by repeating
    its first step; the padding is not scored. Patches keep the attention cheap on CPU (6 tokens instead
    of 30 for the defaults).

    Score of a row: mean squared reconstruction error of the window ending at that row.
    """

    def __init__(self, features=None, window=30, hidden=32, latent=8, n_heads=4, n_layers=1, patch=5, epochs=3,
                 batch_size=256, lr=1e-3, max_windows=20000, stride=1, per_series=True, alpha=1e-3,
                 device="auto", random_state=0):
        self.features = features
        self.window = window
        self.hidden = hidden
        self.latent = latent
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.patch = patch
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_windows = max_windows
        self.stride = stride
        self.per_series = per_series
        self.alpha = alpha
        self.device = device
        self.random_state = random_state

    def _check(self) -> int:
        _positive_int("latent", self.latent)
        _positive_int("n_layers", self.n_layers)
        _positive_int("patch", self.patch)
        heads = _positive_int("n_heads", self.n_heads)
        if self.hidden % heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of n_heads ({heads})")
        if self.hidden % 2:
            raise ValueError(f"hidden must be even for the sinusoidal positional encoding, got {self.hidden}")
        return super()._check()

    def _config(self, n_features: int, window: int) -> dict:
        return {"n_features": n_features, "window": window, "hidden": int(self.hidden), "latent": int(self.latent),
                    "n_heads": int(self.n_heads), "n_layers": int(self.n_layers), "patch": int(self.patch)}

    def _make_module(self) -> nn.Module:
        return _TransformerAE(**self.config_)


class VAEDetector(_WindowAutoencoder):
    """Variational autoencoder (MLP encoder/decoder, Gaussian latent of size ``latent``) over the flattened
    window; ``window=1`` models single rows. Trained on the negative ELBO with a ``beta``-weighted KL term.

    Score of a row: the negative ELBO per element of the window ending at that row, evaluated
    deterministically at the posterior mean: (0.5 * ||x - decode(mu)||^2 + beta * KL(q(z|x) || N(0, I))) / d,
    with d = window x features.
    """

    def __init__(self, features=None, window=30, hidden=32, latent=8, beta=1.0, epochs=3, batch_size=256,
                 lr=1e-3, max_windows=20000, stride=1, per_series=True, alpha=1e-3, device="auto",
                 random_state=0):
        self.features = features
        self.window = window
        self.hidden = hidden
        self.latent = latent
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_windows = max_windows
        self.stride = stride
        self.per_series = per_series
        self.alpha = alpha
        self.device = device
        self.random_state = random_state

    def _check(self) -> int:
        _positive_int("latent", self.latent)
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")
        return super()._check()

    def _config(self, n_features: int, window: int) -> dict:
        return {"n_features": n_features, "window": window, "hidden": int(self.hidden), "latent": int(self.latent),
                    "beta": float(self.beta)}

    def _make_module(self) -> nn.Module:
        return _VAE(**self.config_)


# ---------------------------------------------------------------------------------------------- graph
def _edge_pairs(edges) -> list[tuple[object, object]]:
    if edges is None:
        return []
    if hasattr(edges, "edges") and callable(edges.edges):  # a networkx graph
        edges = edges.edges()
    pairs = []
    for e in edges:
        e = tuple(e)
        if len(e) < 2:
            raise ValueError(f"edges must be (caller, callee) pairs, got {e!r}")
        pairs.append((e[0], e[1]))
    return pairs


def normalised_adjacency(nodes, edges) -> np.ndarray:
    """D^-1/2 (A + I) D^-1/2 over ``nodes``; edges are undirected, those naming unknown nodes are ignored."""
    index = {n: i for i, n in enumerate(nodes)}
    a = np.eye(len(nodes))
    for u, v in _edge_pairs(edges):
        i, j = index.get(u), index.get(v)
        if i is not None and j is not None and i != j:
            a[i, j] = a[j, i] = 1.0
    d = 1.0 / np.sqrt(a.sum(axis=1))
    return a * d[:, None] * d[None, :]


def _gather_graph_windows(window: int):
    def gather(data: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(window, device=starts.device)
        w = data[starts[:, None] + offsets]  # (batch, window, node, feature)
        return w.permute(0, 2, 1, 3).reshape(w.shape[0], w.shape[2], -1)  # (batch, node, window*feature)
    return gather


class GraphDetector(_TorchDetector):
    """Graph autoencoder over the service dependency graph; scores every service at every timestamp.

    ``edges``: (caller, callee) pairs of service names (or a networkx graph). Edges are taken as
    undirected; services without edges are isolated nodes (their own self-loop only).

    The input must be stacked by service: a MultiIndex (service, timestamp). It is aligned into a
    (time, node, feature) tensor over the sorted union of timestamps. A service absent at a timestamp
    keeps its last value (forward fill); before its first row it holds its training mean (0 in
    standardised units). Features are standardised per service with that service's training mean / std
    (services first seen when scoring use the stats pooled over all services). Services seen in ``fit``
    but absent from a scoring frame stay in the graph at their training mean and get no rows.

    Model: node input = the node's last ``window`` steps, flattened (window x features) -> linear + ReLU
    -> GCN layer (A_hat H W) + ReLU -> GCN layer to a ``latent`` vector per node -> per-node MLP back to
    window x features, with A_hat = D^-1/2 (A + I) D^-1/2. The weights are shared by all nodes, so the
    graph may grow or shrink between fit and score. Score of row (s, t): mean squared reconstruction error
    of node s over the window ending at t; the first ``window - 1`` timestamps reuse the first window's.
    """

    def __init__(self, edges=None, features=None, window=30, hidden=32, latent=8, epochs=3, batch_size=256,
                 lr=1e-3, max_windows=20000, stride=1, alpha=1e-3, device="auto", random_state=0):
        self.edges = edges
        self.features = features
        self.window = window
        self.hidden = hidden
        self.latent = latent
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_windows = max_windows
        self.stride = stride
        self.alpha = alpha
        self.device = device
        self.random_state = random_state

    def _make_module(self) -> nn.Module:
        return _GraphAE(**self.config_)

    def _align(self, frame: pd.DataFrame, nodes: list, mean: np.ndarray, scale: np.ndarray):
        """(time, node, feature) standardised tensor plus each row's (time, node) index."""
        svc = frame.index.get_level_values(0)
        ts = frame.index.get_level_values(1)
        times = pd.Index(ts).unique().sort_values()
        t_idx = times.get_indexer(ts)
        n_idx = pd.Index(nodes).get_indexer(svc)
        z = _standardise(frame.to_numpy(dtype=float), mean[n_idx], scale[n_idx])
        n_t, n_n, n_f = len(times), len(nodes), frame.shape[1]
        cube = np.zeros((n_t, n_n, n_f), dtype=np.float32)
        seen = np.zeros((n_t, n_n), dtype=bool)
        cube[t_idx, n_idx] = z
        seen[t_idx, n_idx] = True
        last = np.where(seen, np.arange(n_t)[:, None], -1)
        np.maximum.accumulate(last, axis=0, out=last)  # the last timestamp each node was seen at
        filled = cube[np.maximum(last, 0), np.arange(n_n)[None, :]]
        filled[last < 0] = 0.0  # before a service's first row: its training mean
        return filled, t_idx, n_idx

    @staticmethod
    def _require_stacked(frame: pd.DataFrame) -> None:
        if not isinstance(frame.index, pd.MultiIndex) or frame.index.nlevels < 2:
            raise ValueError("GraphDetector needs a frame stacked by service: a MultiIndex whose first level is "
                             "the service and second the timestamp")

    def _fit(self, frame: pd.DataFrame) -> None:
        self._require_stacked(frame)
        window = self._check_common()
        _positive_int("latent", self.latent)
        _edge_pairs(self.edges)  # validate early
        seed = _seed(self.random_state)
        rng = np.random.default_rng(seed)
        x = frame.to_numpy(dtype=float)
        svc = frame.index.get_level_values(0)
        self.nodes_ = np.array(list(pd.unique(svc)), dtype=object)
        codes = pd.Index(self.nodes_).get_indexer(svc)
        stats = [_location_scale(x[codes == i]) for i in range(len(self.nodes_))]
        self.mean_ = np.stack([m for m, _ in stats])
        self.scale_ = np.stack([s for _, s in stats])
        self.pooled_mean_, self.pooled_scale_ = _location_scale(x)
        cube, _, _ = self._align(frame, list(self.nodes_), self.mean_, self.scale_)
        if len(cube) < window:
            raise NotEnoughData(f"GraphDetector needs at least window={window} timestamps, got {len(cube)}")
        starts = self._sample_starts(np.arange(0, len(cube) - window + 1, int(self.stride)), rng)
        self.config_ = {"n_in": window * frame.shape[1], "hidden": int(self.hidden), "latent": int(self.latent)}
        self.window_ = window
        device = _resolve_device(self.device)
        adj = torch.as_tensor(normalised_adjacency(list(self.nodes_), self.edges), dtype=torch.float32,
                              device=device)
        self._train(torch.from_numpy(cube).to(device), starts, _gather_graph_windows(window), (adj,), device,
                    seed, rng)

    def _score(self, frame: pd.DataFrame) -> np.ndarray:
        self._require_stacked(frame)
        out = np.empty(len(frame))
        if len(frame) == 0:
            return out
        window = self.window_
        known = set(self.nodes_.tolist())
        new = [s for s in pd.unique(frame.index.get_level_values(0)) if s not in known]
        nodes = list(self.nodes_) + new
        mean = np.vstack([self.mean_] + [self.pooled_mean_[None, :]] * len(new))
        scale = np.vstack([self.scale_] + [self.pooled_scale_[None, :]] * len(new))
        cube, t_idx, n_idx = self._align(frame, nodes, mean, scale)
        if len(cube) < window:
            raise NotEnoughData(f"GraphDetector needs at least window={window} timestamps, got {len(cube)}")
        device = _resolve_device(self.device, scoring=True)
        net = self._module(device)
        adj = torch.as_tensor(normalised_adjacency(nodes, self.edges), dtype=torch.float32, device=device)
        n_win = len(cube) - window + 1
        errors = np.empty((n_win, len(nodes)))
        data = torch.from_numpy(cube).to(device)
        gather = _gather_graph_windows(window)
        step = max(1, _SCORE_FLOATS // (window * cube.shape[1] * cube.shape[2]))
        starts_t = torch.arange(n_win, device=device)
        with torch.inference_mode():
            for i in range(0, n_win, step):
                errors[i: i + step] = net.errors(gather(data, starts_t[i: i + step]), adj).double().cpu().numpy()
        win_idx = np.maximum(t_idx - (window - 1), 0)  # the window ending at t; early rows reuse the first
        out[:] = errors[win_idx, n_idx]
        return out
