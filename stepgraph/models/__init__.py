"""Model backends behind one batch-first interface, and the embedded models."""

from stepgraph.models.base import BackendBase, Completion, Message, Request
from stepgraph.models.scripted import ScriptedBackend
from stepgraph.models.spec import load_model

__all__ = [
    "BackendBase",
    "Completion",
    "Message",
    "Request",
    "ScriptedBackend",
    "load_model",
]
