"""The streamed entities: each model that the dashboard stream carries, declared once.

Like `admin.site.register(Model, ModelAdmin)`, an app registers its sequenced models in its
`AppConfig.ready()`:

    stream.register(Task, entity="task", serializer=task_row, view_permission="tasks.view_task")

and everything in realtime/ reads the declaration: sequencing names the entity of each
event, the sync serialises its rows under `<entity>s` and its deletions under
`deleted.<entity>s`, access to the stream requires every declared `view_permission`, the
epoch rotation looks at every registered table, and an entity declared with `views` is the
one clients hold a window of (realtime/viewspec.py).

Like django/apps/registry.py, this module is data only: it imports nothing of realtime/ and
no app that registers into it. RealtimeConfig.ready() wires the deletion receiver, and a
system check (realtime/checks.py) finds SequencedModel subclasses that were never registered.
"""
from dataclasses import dataclass, field
from typing import Any, Callable

from django.core.exceptions import ImproperlyConfigured


class AlreadyRegistered(ImproperlyConfigured):
    """A model was registered with the stream twice."""


@dataclass(frozen=True)
class Entity:
    name: str  # the `entity` of its events: "task"
    model: type
    serializer: Callable  # instance -> the row as the wire shows it (bounded: realtime/rows.py)
    view_permission: str | None = None
    history: bool = False  # keep every change in realtime.models.Change (realtime/changes.py)
    status_field: str | None = None  # its value before and after each change is kept too
    # A ViewSpec (realtime/viewspec.py): clients hold windows of this entity, never all of it,
    # and its rows are counted per `status_field` value in the writer's transaction.
    views: Any = None
    # The fields whose values before each change sequencing reads and carries with the event:
    # the status (history, counts) and whatever the views match on.
    watched: tuple = field(init=False)

    def __post_init__(self):
        names = ((self.status_field,) if self.status_field else ()) + (tuple(self.views.fields) if self.views else ())
        object.__setattr__(self, "watched", tuple(dict.fromkeys(names)))

    @property
    def key(self):
        """Its key in a `sync` frame and in `deleted`: "tasks"."""
        return self.name + "s"

    @property
    def counted(self):
        return self.views is not None

    def status_of(self, values):
        """The status among watched `values` (None: the row did not exist). The status field
        comes first in `watched`."""
        return None if values is None or not self.status_field else values[0]

    def snapshot(self):
        """Every row, for a reset."""
        return self.model._base_manager.order_by("pk")


_entities = {}


def register(model, *, entity, serializer, view_permission=None, history=False, status_field=None, views=None):
    """Declare `model` as the streamed entity `entity` (call from AppConfig.ready()).

    With `history=True` every change is also kept as a Change row (timelines, charts), with
    the value of `status_field` before and after it. With `views` (a ViewSpec), clients
    subscribe to windows of it and its rows are counted by `status_field`."""
    for other in _entities.values():
        if other.name == entity and other.model is not model:
            raise ImproperlyConfigured(f"the entity name {entity!r} is taken by {other.model.__name__}")
    if model in _entities:
        raise AlreadyRegistered(f"{model.__name__} is already registered with the stream as {_entities[model].name!r}")
    if views is not None and not status_field:
        raise ImproperlyConfigured(f"{model.__name__}: an entity with views is counted by status: give status_field")
    _entities[model] = Entity(entity, model, serializer, view_permission, history, status_field, views)
    return _entities[model]


def unregister(model):
    """Forget `model` (tests that register a model of their own)."""
    _entities.pop(model, None)


def entities():
    """Every registered entity, in registration order."""
    return list(_entities.values())


def lookup(model):
    """The entity of `model` (or of its concrete model), or None."""
    entity = _entities.get(model)
    if entity is None:
        meta = getattr(model, "_meta", None)
        entity = meta and _entities.get(meta.concrete_model)
    return entity


def entity_of(model):
    """The entity of a sequenced model; a model written before it is registered is a bug."""
    entity = lookup(model)
    if entity is None:
        raise ImproperlyConfigured(
            f"{model.__name__} is a SequencedModel but is not registered with the stream: call "
            f"realtime.registry.register({model.__name__}, entity=..., serializer=...) in its AppConfig.ready()"
        )
    return entity


def by_name(name):
    """The entity called `name`, or None."""
    return next((e for e in _entities.values() if e.name == name), None)


def windowed():
    """The entity clients hold windows of (the one registered with `views`), or None."""
    return next((e for e in _entities.values() if e.views is not None), None)


def names():
    return [e.name for e in entities()]


def view_permissions():
    return [e.view_permission for e in entities() if e.view_permission]


def serialize(instance):
    """The row of `instance` as the wire shows it."""
    return entity_of(type(instance)).serializer(instance)
