"""The one call recorder of the test suites: what a module (or any object's method) was called with and returned.

Test files import it the way they import ``ui_helpers`` (every conftest puts ``tests/`` on ``sys.path``)::

    with CallRecorder(pipe.unet) as unet:
        pipe(...)
    args, kwargs = unet.calls[0]            # as passed
    unet.arguments[0]["added_time_ids"]     # every argument by parameter name, positional ones included
    unet.outputs[0]                         # what the call returned

Modules are recorded through forward hooks (removed when the ``with`` block ends); another method, e.g. a fake
VAE's ``encode``, is wrapped on the instance for the block's duration. Several targets record into one log in
call order (e.g. every up block of a UNet).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch


class CallRecorder:
    """Keeps ``(args, kwargs)`` and the output of every call of ``method`` of each target inside a ``with`` block.

    Args:
        targets: ``torch.nn.Module`` s or other objects with ``method``.
        method: the method recorded (``"forward"``: a module's calls, through hooks).
    """

    def __init__(self, *targets: Any, method: str = "forward") -> None:
        if not targets:
            raise ValueError("CallRecorder needs at least one target")
        self.targets, self.method = targets, method
        self.calls: list[tuple[tuple, dict]] = []
        self.outputs: list[Any] = []
        self._signatures: list[inspect.Signature] = []
        self._undo: list[Callable[[], None]] = []

    @property
    def arguments(self) -> list[dict[str, Any]]:
        """Every call's arguments by parameter name (positional ones bound to their names; defaults left out)."""
        return [
            dict(signature.bind(*args, **kwargs).arguments)
            for signature, (args, kwargs) in zip(self._signatures, self.calls)
        ]

    def __enter__(self) -> CallRecorder:
        for target in self.targets:
            if self.method == "forward" and isinstance(target, torch.nn.Module):
                self._hook_module(target)
            else:
                self._wrap_method(target)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _record(self, function: Callable, args: tuple, kwargs: dict) -> None:
        self.calls.append((args, dict(kwargs)))
        self._signatures.append(inspect.signature(function))

    def _hook_module(self, module: torch.nn.Module) -> None:
        def before(hooked: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            self._record(hooked.forward, args, kwargs)

        def after(hooked: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            self.outputs.append(output)

        handles = (
            module.register_forward_pre_hook(before, with_kwargs=True),
            module.register_forward_hook(after, with_kwargs=True),
        )
        self._undo.append(lambda: [handle.remove() for handle in handles])

    def _wrap_method(self, target: Any) -> None:
        original = getattr(target, self.method)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._record(original, args, kwargs)
            output = original(*args, **kwargs)
            self.outputs.append(output)
            return output

        had_own = self.method in vars(target)
        setattr(target, self.method, recorded)
        self._undo.append(lambda: setattr(target, self.method, original) if had_own else delattr(target, self.method))
