"""The network's training forward and backward replayed as CUDA graphs, one pair per batch shape.

Why: a training step of the original-size model on 64 windows launches about 1,000 kernels, and the
host needs ~30 ms to launch them while the GPU needs a few; a captured graph replays the same work in
one launch for the forward and one for the backward. Shapes repeat when lengths are rounded
(``data.pad_multiple``), so each shape is captured once (three warm-up passes and a capture) and
replayed for the rest of the run. Only the network is captured: losses, metrics, gradient clipping
and the optimiser stay eager, so Lightning's loop, the loss-weight schedule and every callback work
unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gainakt.model.gainakt3exp import GainAKT3Exp, ModelOutput


class NetworkOutputs(nn.Module):
    """The network as a function of tensors to a dict of tensors, the form graph capture accepts
    (``ModelOutput`` is not a pytree, and its absent fields are None)."""

    def __init__(self, net: GainAKT3Exp, need_all_gains: bool) -> None:
        super().__init__()
        self.net = net
        self.need_all_gains = need_all_gains

    def forward(self, skills: torch.Tensor, responses: torch.Tensor, student: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(skills, responses, student, need_all_gains=self.need_all_gains)
        values = {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
        return {name: value for name, value in values.items() if value is not None}


def as_model_output(outputs: dict[str, torch.Tensor]) -> ModelOutput:
    """Back from :class:`NetworkOutputs`' dict to the network's own output."""
    return ModelOutput(**{f.name: outputs.get(f.name) for f in dataclasses.fields(ModelOutput)})


class CapturedStep:
    """One batch shape's forward and backward as a pair of CUDA graphs.

    Like ``torch.cuda.make_graphed_callables`` (warm-up on a side stream, then the forward and the
    backward captured into one memory pool), except for where the parameter gradients go: the
    backward graph writes them into its own buffers and :class:`_Replay` hands those to the
    parameters' ``.grad`` itself. The parameters are therefore not inputs of the replayed autograd
    node, and autograd runs no gradient-accumulation node for them: those nodes were created on the
    capture's side streams, and when the stream that produced a gradient is not the accumulation
    node's, PyTorch synchronises the two for every parameter at every step (its warning "The
    AccumulateGrad node's stream does not match ..."). ``.grad`` aliases the graph's buffer, as it
    does with ``make_graphed_callables``: read it before this shape replays again (Lightning's
    optimiser step does; gradient accumulation over batches is refused).
    """

    def __init__(self, module: nn.Module, args: tuple[torch.Tensor, ...], pool: Any, warmup_passes: int = 3) -> None:
        params = [p for p in module.parameters() if p.requires_grad]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # lazy initialisation and kernel plans stay out of the graphs
            for _ in range(warmup_passes):
                warm = [o for o in module(*args).values() if o.requires_grad]
                torch.autograd.grad(warm, params, [torch.ones_like(o) for o in warm], allow_unused=True)
                del warm
        torch.cuda.current_stream().wait_stream(side)
        self.forward_graph, self.backward_graph = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        self.inputs = args  # the capture batch's tensors: each replay copies its batch into them
        with torch.cuda.graph(self.forward_graph, pool=pool):
            outputs = module(*args)
        self.names = list(outputs)
        self.outputs = [outputs[name] for name in self.names]
        self.output_grads = [torch.empty_like(o) if o.requires_grad else None for o in self.outputs]
        with torch.cuda.graph(self.backward_graph, pool=pool):
            grads = torch.autograd.grad([o for o in self.outputs if o.requires_grad], params,
                                        [g for g in self.output_grads if g is not None], allow_unused=True)  # fmt: skip
        self.param_grads = [(p, g) for p, g in zip(params, grads) if g is not None]  # unused weights get none

    def __call__(self, anchor: torch.Tensor, *args: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, _Replay.apply(self, anchor, *args)))


class _Replay(torch.autograd.Function):
    """Replays a :class:`CapturedStep`. ``anchor`` is a scalar that requires a gradient, so that the
    outputs do (no other input does); it never receives one."""

    @staticmethod
    def forward(ctx: Any, step: CapturedStep, anchor: torch.Tensor, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.step = step
        for static, new in zip(step.inputs, args):
            if static.data_ptr() != new.data_ptr():
                static.copy_(new)
        step.forward_graph.replay()
        return tuple(o.detach() for o in step.outputs)  # new views: autograd marks them, not the buffers

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[None, ...]:
        step: CapturedStep = ctx.step
        for static, grad in zip(step.output_grads, grads):
            if static is not None and static.data_ptr() != grad.data_ptr():
                static.copy_(grad)
        step.backward_graph.replay()
        for param, grad in step.param_grads:
            param.grad = grad
        return (None,) * (2 + len(step.inputs))


class GraphedNetwork:
    """Calls ``net`` in training through one captured graph pair per (batch shape, ``need_all_gains``,
    trainable parameters, autocast type).

    The trainable set is part of the key because a backward graph computes the gradients of the
    parameters that required one when it was captured: the loss-weight schedule freezes an encoder
    between phases, and the next phase captures again. The outputs are the graph's static buffers,
    overwritten by the next replay: a step must use them (loss, metrics) before the next step,
    which Lightning's loop does. All graphs share one memory pool, so memory is that of the largest
    shape rather than the sum over shapes; this is safe because a step replays its shape's forward
    and backward before any other graph runs, and nothing a graph leaves behind is read after its
    step (the parameter gradients are consumed by the optimiser within it). CUDA only; evaluation
    runs the network eagerly.

    Args:
        net: the network; captured graphs read its parameters in place, so the optimiser may update
            them but must not replace them.
        capture: makes the graphed callable from (module, sample args, memory pool):
            :class:`CapturedStep` unless a test stands in for it.
    """

    def __init__(self, net: GainAKT3Exp, capture: Callable[..., Any] = CapturedStep) -> None:
        self.net = net
        self.capture = capture
        self.pool: Any = None
        self.anchor: torch.Tensor | None = None
        self.graphs: dict[tuple, Callable[..., dict[str, torch.Tensor]]] = {}

    def key(self, skills: torch.Tensor, student: torch.Tensor, need_all_gains: bool) -> tuple:
        autocast = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None
        trainable = tuple(p.requires_grad for p in self.net.parameters())
        return tuple(skills.shape), tuple(student.shape), need_all_gains, trainable, autocast

    def __call__(
        self, skills: torch.Tensor, responses: torch.Tensor, student: torch.Tensor, need_all_gains: bool = False
    ) -> ModelOutput:
        key = self.key(skills, student, need_all_gains)
        graphed = self.graphs.get(key)
        if graphed is None:  # capture on this batch: its warm-up passes leave .grad untouched
            if self.pool is None and skills.is_cuda:
                self.pool = torch.cuda.graph_pool_handle()
            module = NetworkOutputs(self.net, need_all_gains)
            graphed = self.graphs[key] = self.capture(module, (skills, responses, student), self.pool)
        if self.anchor is None:
            self.anchor = torch.zeros((), device=skills.device, requires_grad=True)
        return as_model_output(graphed(self.anchor, skills, responses, student))
