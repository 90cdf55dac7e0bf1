"""K VAEs of one architecture as one module: a leading member axis on every weight.

Member k of a :class:`StackedVAE` computes exactly what the single :class:`~vaesweep.model.VAE`
it was stacked from computes (same layers, same math): linear layers become batched matrix
products, convolutions and transposed convolutions grouped ones with one group per member
or one convolution per member (:mod:`vaesweep.model.stacked_layers`). One forward and
backward then serves all K members, which is what makes a sweep of small models fast: their
steps are dominated by per-operation overhead, not arithmetic (README, "Stacked sweeps").

Layouts: images and decoder outputs are ``(K, B, C, H, W)``, latents ``(K, B, M)``. Inside the
conv stages activations are ``(B, K * C, H, W)`` (member k owns channels ``k*C .. (k+1)*C``),
the layout grouped convolutions take. The stacked module's parameter names are the single
model's (``encoder.head.1.weight``...), each with a leading K axis, so :meth:`member_state_dict`
gives back a single run's checkpoint keys. Likelihoods stay one module per member.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from vaesweep.model.conv import ConvDecoder, ConvEncoder
from vaesweep.model.layout import prefers_channels_last
from vaesweep.model.mlp import MLPDecoder, MLPEncoder
from vaesweep.model.stacked_layers import (
    StackedLinear,
    members_forward,
    stack_sequential,
)
from vaesweep.model.vae import LOGVAR_RANGE, VAE
from vaesweep.objective.likelihood_base import Likelihood

#: One tensor of a member: (its single-model name, the stack's tensor, the member's view of
#: any tensor shaped like it, e.g. the Adam moments).
Slot = tuple[str, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def _member_of(k: int, transposed: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    if transposed:
        return lambda t: t[k].t()
    return lambda t: t[k]


def _whole(t: torch.Tensor) -> torch.Tensor:
    return t


class StackedConvEncoder(nn.Module):
    """K :class:`ConvEncoder`: (K, B, C, H, W) -> mu, logvar (K, B, M).

    ``per_member``: the conv stages run member by member, each member's activations
    channels-last (on the CPU above 8 x 8 px, ``model.layout``: one grouped convolution for
    all members measured slower there than the members' own convolutions); the fully
    connected layers stay batched over members."""

    def __init__(self, members: Sequence[ConvEncoder], per_member: bool = False) -> None:
        super().__init__()
        self.per_member = per_member
        self.features = stack_sequential([m.features for m in members], per_member)
        self.head = stack_sequential([m.head for m in members])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, b = x.shape[:2]
        if self.per_member:
            hs = members_forward(self.features, list(x.unbind(0)))
            h = torch.stack([t.flatten(1) for t in hs])
            for layer in list(self.head)[1:]:  # after MemberFlatten
                h = layer(h)
        else:
            h = self.features(x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:]))
            h = self.head(h)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar


class StackedConvDecoder(nn.Module):
    """K :class:`ConvDecoder`: (K, B, M) -> decoder parameters (K, B, C, H, W), contiguous
    (``per_member`` as in :class:`StackedConvEncoder`)."""

    def __init__(self, members: Sequence[ConvDecoder], per_member: bool = False) -> None:
        super().__init__()
        self.per_member = per_member
        self.feature_shape = members[0].feature_shape
        self.head = stack_sequential([m.head for m in members])
        self.features = stack_sequential([m.features for m in members], per_member)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k, b = z.shape[:2]
        c, h, w = self.feature_shape
        if self.per_member:
            hs = [t.view(b, c, h, w) for t in self.head(z).unbind(0)]
            return torch.stack(members_forward(self.features, hs)).contiguous()
        y = self.features(self.head(z).transpose(0, 1).reshape(b, k * c, h, w))
        return y.view(b, k, -1, *y.shape[2:]).transpose(0, 1)


class StackedMLPEncoder(nn.Module):
    """K :class:`MLPEncoder`: (K, B, C, H, W) -> mu, logvar (K, B, M)."""

    def __init__(self, members: Sequence[MLPEncoder]) -> None:
        super().__init__()
        self.net = stack_sequential([m.net for m in members])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x.flatten(2)).chunk(2, dim=-1)
        return mu, logvar


class StackedMLPDecoder(nn.Module):
    """K :class:`MLPDecoder`: (K, B, M) -> (K, B, C, H, W)."""

    def __init__(self, members: Sequence[MLPDecoder]) -> None:
        super().__init__()
        self.shape = members[0].shape
        self.net = stack_sequential([m.net for m in members])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(*z.shape[:2], *self.shape)


_STACKED: dict[type, Callable[..., nn.Module]] = {
    ConvEncoder: StackedConvEncoder,
    ConvDecoder: StackedConvDecoder,
    MLPEncoder: lambda parts, per_member: StackedMLPEncoder(parts),
    MLPDecoder: lambda parts, per_member: StackedMLPDecoder(parts),
}


def _stack_part(parts: Sequence[nn.Module], per_member: bool) -> nn.Module:
    kinds = {type(p) for p in parts}
    if len(kinds) != 1 or next(iter(kinds)) not in _STACKED:
        raise TypeError(f"members must share one stackable architecture, got {kinds}")
    return _STACKED[type(parts[0])](parts, per_member)


class StackedVAE(nn.Module):
    """K VAEs of one architecture; member k starts as ``members[k]`` (its own initialisation).

    ``per_member``: run the conv stages member by member in the channels-last layout instead
    of as grouped convolutions; None decides by device and image size as single models do
    (``model.layout``: on the CPU above 8 x 8 px). Measured on the 2-core CPU, one training
    step of 4 members (medians of alternating repeats): Fashion-MNIST, one thread, 218.6 ms
    grouped, 184.6 ms member by member, 193.6 ms for 4 single models; CIFAR-10, two threads,
    176.6, 147.4 and 168.4 ms."""

    def __init__(self, members: Sequence[VAE], per_member: bool | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("a stack needs at least one member")
        shapes = {(m.shape, m.latent_dim) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"members differ in image shape or latent size: {shapes}")
        self.k = len(members)
        self.shape = members[0].shape
        self.latent_dim = members[0].latent_dim
        #: Conv stages member by member, channels-last (``model.layout``), else grouped.
        if per_member is None:
            device = next(members[0].parameters()).device
            per_member = prefers_channels_last(device, self.shape)
        self.per_member = per_member
        self.encoder = _stack_part([m.encoder for m in members], self.per_member)
        self.decoder = _stack_part([m.decoder for m in members], self.per_member)
        self.likelihoods = nn.ModuleList([m.likelihood for m in members])
        # A single model to evaluate one member with the single-run code (member_view); in a
        # tuple so that it is not registered as a submodule (its weights are not the stack's).
        self._view: tuple[VAE] = (members[0],)
        #: Each member's own single model (:meth:`member_model`); a dict, so not registered.
        self._models: dict[int, VAE] = {}

    @property
    def n_pixels(self) -> int:
        c, h, w = self.shape
        return c * h * w

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (K, B, C, H, W) in [0, 1] -> mu, logvar (K, B, M)."""
        mu, logvar = self.encoder(x)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (K, B, M) -> decoder parameters (K, B, C, H, W)."""
        return self.decoder(z)

    reparameterize = staticmethod(VAE.reparameterize)

    # ------------------------------------------------------------------ members
    def stacked_parameters(self) -> list[nn.Parameter]:
        """Parameters with a leading member axis (encoder and decoder)."""
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def member_likelihood(self, k: int) -> Likelihood:
        """Member k's likelihood module (its own learned sigma, if any)."""
        lik = self.likelihoods[k]
        assert isinstance(lik, Likelihood)
        return lik

    def member_likelihoods(self) -> list[Likelihood]:
        return [self.member_likelihood(k) for k in range(self.k)]

    def member_slots(self, k: int) -> list[Slot]:
        """Member k's tensors (parameters, then buffers) in its single model's
        ``state_dict`` order: (single-model name, held tensor, view of member k)."""
        out: list[Slot] = []
        for part in ("encoder", "decoder"):
            for path, module in getattr(self, part).named_modules():
                for name, t in module.named_parameters(recurse=False):
                    full = ".".join(x for x in (part, path, name) if x)
                    transposed = isinstance(module, StackedLinear) and name == "weight"
                    out.append((full, t, _member_of(k, transposed)))
        for name, t in [
            *self.likelihoods[k].named_parameters(),
            *self.likelihoods[k].named_buffers(),
        ]:
            out.append((f"likelihood.{name}", t, _whole))
        return out

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights with a single run's keys and shapes (copies, safe to save)."""
        return {name: view(t).detach().clone() for name, t, view in self.member_slots(k)}

    @torch.no_grad()
    def load_member_state_dict(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Put a single run's weights (e.g. its checkpoint) into member k."""
        slots = self.member_slots(k)
        expected = {name for name, _, _ in slots}
        if set(state) != expected:
            raise ValueError(f"member state has keys {sorted(set(state) ^ expected)} mismatched")
        for name, t, view in slots:
            view(t).copy_(state[name])

    def member_view(self, k: int) -> VAE:
        """A single :class:`VAE` holding a copy of member k's current weights and sharing its
        likelihood module, for the single-run evaluation and image code. The same object
        serves every member: use it for one member at a time (see :meth:`member_model`)."""
        return self._load_member(self._view[0], k)

    def member_model(self, k: int) -> VAE:
        """Member k's own single :class:`VAE` (made once, then reused) loaded with a copy of
        its current weights and sharing its likelihood module: several members can be
        evaluated at once, one per thread, when each is asked for before the threads start."""
        if k not in self._models:
            template = self._view[0]
            likelihood = template.likelihood
            template.likelihood = None  # type: ignore[assignment]
            try:
                self._models[k] = copy.deepcopy(template)
            finally:
                template.likelihood = likelihood
        return self._load_member(self._models[k], k)

    def _load_member(self, view: VAE, k: int) -> VAE:
        view.likelihood = self.member_likelihood(k)
        mine = dict(view.named_parameters())
        with torch.no_grad():
            for name, t, member in self.member_slots(k):
                if not name.startswith("likelihood."):
                    mine[name].copy_(member(t))
        view.train(self.training)
        return view
