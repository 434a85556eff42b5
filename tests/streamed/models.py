"""A streamed entity that exists only in the tests: a note. Nothing in realtime/ knows it."""
from django.db import models

from realtime.sequencing import SequencedModel


class Note(SequencedModel):
    text = models.CharField(max_length=100)
