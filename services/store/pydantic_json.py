"""A JSON column that holds one pydantic model: its schema is the model, named where the column is.

It writes exactly what a plain JSON column was given, ``model.model_dump(mode="json")`` (the same
keys in the same order), so stores from before it read back and new ones hold the same bytes; a
row load validates the JSON into the model once.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

M = TypeVar("M", bound=BaseModel)


class PydanticJSON(TypeDecorator[M]):
    """``mapped_column(PydanticJSON(HeadScore))``: give it a ``HeadScore``, load a ``HeadScore``."""

    impl = JSON
    cache_ok = True
    hashable = False  # pydantic models define __eq__ without __hash__

    def __init__(self, model: type[M]):
        super().__init__(none_as_null=True)  # None is SQL NULL, as a plain JSON column stored an unset value
        self.model = model

    def process_bind_param(self, value: object, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, self.model):
            raise TypeError(f"a {self.model.__name__} column was given a {type(value).__name__}")
        return value.model_dump(mode="json")

    def process_result_value(self, value: Any, dialect: Dialect) -> M | None:
        if value is None:
            return None
        try:
            return self.model.model_validate(value)
        except ValidationError as error:
            raise ValueError(f"the store holds JSON that is not a valid {self.model.__name__}: {error}") from error
