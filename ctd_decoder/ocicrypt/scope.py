"""What unwrapping one layer may spend and keep, whatever its annotations hold.

A layer's key annotations are image content, so attacker-influenced. :func:`layer_scope` bounds the
work: at most :data:`MAX_KEY_ELEMENTS` wrapped keys, :data:`MAX_RECIPIENTS` recipients in each, and a
budget of :data:`MAX_KEY_TRIALS` trial units (one private-key operation costs one, a gpg run or a key
provider call more). Genuine images carry one wrapped key per scheme (one more each time recipients
are added to an encrypted image) and one recipient per public key it was encrypted to: a handful.

The scope also keeps resources that every wrapped key of the layer shares (one GnuPG home per key
ring), released when the layer is done, on every exit path.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .errors import LimitError, UnwrapError

MAX_KEY_ELEMENTS = 64
MAX_RECIPIENTS = 64
MAX_KEY_TRIALS = 256
PRIVATE_KEY_OPERATION = 1
TOKEN_OPERATION = 4
PROCESS_RUN = 16

T = TypeVar("T")


class LayerScope:
    """The trial budget and the shared resources of one layer's unwrapping."""

    def __init__(self) -> None:
        self.spent = 0
        self.limit: LimitError | None = None  # set once the budget is used up
        self.resources: dict[Any, Any] = {}
        self.stack = contextlib.ExitStack()

    def spend(self, cost: int, what: str) -> None:
        """Charge ``cost`` units for ``what``; raise :class:`LimitError` once the budget is used up."""
        if self.spent + cost > MAX_KEY_TRIALS:
            self.limit = LimitError(
                f"stopped before {what}: this layer already used its {MAX_KEY_TRIALS} key trials, far more than "
                "any genuine image needs (too many wrapped keys or recipients)"
            )
            raise self.limit
        self.spent += cost


_current: contextvars.ContextVar[LayerScope | None] = contextvars.ContextVar("layer_scope", default=None)


@contextlib.contextmanager
def layer_scope() -> Iterator[LayerScope]:
    """Open the scope of one layer; shared resources are released when it closes."""
    scope = LayerScope()
    token = _current.set(scope)
    try:
        with scope.stack:
            yield scope
    finally:
        _current.reset(token)


def spend(cost: int, what: str) -> None:
    """Charge the current layer's budget (no budget outside :func:`layer_scope`)."""
    scope = _current.get()
    if scope is not None:
        scope.spend(cost, what)


def limit_reached() -> LimitError | None:
    """The current layer's budget error once it was raised, even if a wrapper turned it into its own."""
    scope = _current.get()
    return None if scope is None else scope.limit


def check_recipients(count: int, what: str) -> None:
    """Refuse one wrapped key with more than :data:`MAX_RECIPIENTS` recipients; the next one is still tried."""
    if count > MAX_RECIPIENTS:
        raise UnwrapError(f"{what} has {count} recipients, more than the {MAX_RECIPIENTS} tried per wrapped key")


def shared(key: Any, factory: Callable[[], contextlib.AbstractContextManager[T]]) -> T | None:
    """Return the layer's resource for ``key``, entering ``factory()`` the first time.

    Outside a layer scope nothing is shared: None, and the caller manages its own resource.
    """
    scope = _current.get()
    if scope is None:
        return None
    if key not in scope.resources:
        scope.resources[key] = scope.stack.enter_context(factory())
    resource: T = scope.resources[key]
    return resource
