"""Models of the systems under test: one file per model, registered here by name.

A model has ``init(value)`` → state and ``step(state, op)`` → next state, or ``None`` when
the operation cannot happen in that state; states are hashable (see
:mod:`checker.models.base` for the whole protocol). A new model is one file plus one line
in :data:`MODELS`.
"""

from __future__ import annotations

from checker.models.base import NIL, FrozenMap, Model, ModelError
from checker.models.cas_register import CasRegisterModel
from checker.models.counter import CounterModel
from checker.models.etcd import EtcdModel
from checker.models.fifo_queue import FifoQueueModel
from checker.models.kv import KVModel
from checker.models.multi_register import MultiRegisterModel
from checker.models.mutex import MutexModel
from checker.models.register import RegisterModel
from checker.models.set import SetModel
from checker.models.unordered_queue import UnorderedQueueModel

MODELS: dict[str, type[Model]] = {
    "register": RegisterModel,
    "cas-register": CasRegisterModel,
    "multi-register": MultiRegisterModel,
    "mutex": MutexModel,
    "fifo-queue": FifoQueueModel,
    "unordered-queue": UnorderedQueueModel,
    "set": SetModel,
    "kv": KVModel,
    "counter": CounterModel,
    "etcd": EtcdModel,
}


def get_model(name: str) -> Model:
    """A model by its registered name; ``ValueError`` naming the known ones otherwise."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; expected one of {', '.join(sorted(MODELS))}"
        ) from None


__all__ = ["MODELS", "NIL", "FrozenMap", "Model", "ModelError", "get_model"]
