"""The streamed entities: each model that the dashboard stream carries, declared once.

Like `admin.site.register(Model, ModelAdmin)`, an app registers its sequenced models in its
`AppConfig.ready()`:

    stream.register(Task, entity="task", serializer=task_row, view_permission="tasks.view_task")

and everything in realtime/ reads the declaration: sequencing names the entity of each
event and numbers its deletions (the registration connects the pre_delete receiver), the
sync serialises its rows under `<entity>s` and its deletions under `deleted.<entity>s`,
access to the stream requires every declared `view_permission`, and the epoch rotation looks
at every registered table. This module imports no app that registers into it.

A model that subclasses SequencedModel but is never registered fails loudly on its first
write (see `entity_of`), instead of writing unpublished, unsequenced deletions.
"""
from dataclasses import dataclass
from typing import Callable

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Entity:
    name: str  # the `entity` of its events: "task"
    model: type
    serializer: Callable  # instance -> the row as the wire shows it (bounded: realtime/rows.py)
    view_permission: str | None = None
    history: bool = False  # keep every change in realtime.models.Change (realtime/changes.py)
    status_field: str | None = None  # its value before and after each change is kept too

    @property
    def key(self):
        """Its key in a `sync` frame and in `deleted`: "tasks"."""
        return self.name + "s"

    def snapshot(self):
        """Every row, for a reset."""
        return self.model._base_manager.order_by("pk")


_entities = {}


def register(model, *, entity, serializer, view_permission=None, history=False, status_field=None):
    """Declare `model` as the streamed entity `entity` (call from AppConfig.ready()).

    With `history=True` every change is also kept as a Change row (timelines, charts), with
    the value of `status_field` before and after it."""
    from django.db.models.signals import pre_delete

    from .sequencing import SequencedModel, sequence_deletion

    if not issubclass(model, SequencedModel):
        raise ImproperlyConfigured(f"{model.__name__} must subclass realtime.sequencing.SequencedModel to be streamed")
    for other in _entities.values():
        if other.name == entity and other.model is not model:
            raise ImproperlyConfigured(f"the entity name {entity!r} is taken by {other.model.__name__}")
    _entities[model] = Entity(entity, model, serializer, view_permission, history, status_field)
    pre_delete.connect(sequence_deletion, sender=model, dispatch_uid=f"realtime.sequence_deletion.{model._meta.label}")
    return _entities[model]


def unregister(model):
    """Forget `model` (tests that register a model of their own)."""
    from django.db.models.signals import pre_delete

    _entities.pop(model, None)
    pre_delete.disconnect(sender=model, dispatch_uid=f"realtime.sequence_deletion.{model._meta.label}")


def entities():
    """Every registered entity, in registration order."""
    return list(_entities.values())


def entity_of(model):
    """The entity of a sequenced model; a model written before it is registered is a bug."""
    entity = _entities.get(model) or _entities.get(getattr(model, "_meta", None) and model._meta.concrete_model)
    if entity is None:
        raise ImproperlyConfigured(
            f"{model.__name__} is a SequencedModel but is not registered with the stream: call "
            f"realtime.registry.register({model.__name__}, entity=..., serializer=...) in its AppConfig.ready()"
        )
    return entity


def by_name(name):
    """The entity called `name`, or None."""
    return next((e for e in _entities.values() if e.name == name), None)


def names():
    return [e.name for e in entities()]


def view_permissions():
    return [e.view_permission for e in entities() if e.view_permission]


def serialize(instance):
    """The row of `instance` as the wire shows it."""
    return entity_of(type(instance)).serializer(instance)
