"""System checks of the stream's declarations (`manage.py check`, and every server start)."""
from django.apps import apps
from django.core import checks


def every_sequenced_model_is_registered(app_configs=None, **kwargs):
    """A SequencedModel that no app registered would fail on its first write: say so at start."""
    from . import registry
    from .sequencing import SequencedModel

    errors = []
    for model in apps.get_models():
        if issubclass(model, SequencedModel) and registry.lookup(model) is None:
            errors.append(checks.Error(
                f"{model._meta.label} is a SequencedModel but is not registered with the stream",
                hint=f"call realtime.registry.register({model.__name__}, entity=..., serializer=...) in its AppConfig.ready()",
                obj=model, id="realtime.E001",
            ))
    for entity in registry.entities():
        if not issubclass(entity.model, SequencedModel):
            errors.append(checks.Error(
                f"{entity.model.__name__} is registered with the stream but does not subclass SequencedModel",
                hint="make it subclass realtime.sequencing.SequencedModel, which numbers and publishes its writes",
                obj=entity.model, id="realtime.E002",
            ))
    return errors
