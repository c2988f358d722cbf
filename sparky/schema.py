"""Spark schemas derived from the pydantic contracts in `core.events`; no StructField is hand-written."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from types import NoneType, UnionType
from typing import Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from core.events import HistoricalLoan, LoanApplication

SCALARS: dict[object, DataType] = {
    str: StringType(),
    int: LongType(),
    float: DoubleType(),
    bool: BooleanType(),
    datetime: TimestampType(),
    date: DateType(),
    Decimal: DecimalType(18, 2),
}


def spark_type(tp: object) -> DataType:
    """The Spark type of one annotation: `X | None` -> X, list -> array, dict -> map, model -> struct,
    enum -> string."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, UnionType):
        return spark_type(next(a for a in args if a is not NoneType))
    if origin is list:
        return ArrayType(spark_type(args[0]))
    if origin is dict:
        return MapType(spark_type(args[0]), spark_type(args[1]))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return to_struct_type(tp)
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return StringType()
    if tp in SCALARS:
        return SCALARS[tp]
    raise TypeError(f"no Spark type for {tp!r}; add it to SCALARS in sparky/schema.py")


def to_struct_type(model: type[BaseModel]) -> StructType:
    """A StructType with one field per model field, nullable unless the field is required."""
    hints = get_type_hints(model)
    return StructType(
        [
            StructField(name, spark_type(hints[name]), not field.is_required())
            for name, field in model.model_fields.items()
        ]
    )


def typed(model: type[BaseModel], columns: Mapping[str, Column]) -> list[Column]:
    """The record `model` from `columns` (a field not given: the column of its name), each cast to its
    contract type, in contract order."""
    return [
        columns.get(f.name, F.col(f.name)).cast(f.dataType).alias(f.name)
        for f in to_struct_type(model).fields
    ]


def enum_values(tp: object) -> list[str] | None:
    """The values of the StrEnum an annotation names (`E` or `E | None`), or None if it names none."""
    for candidate in (tp, *get_args(tp)):
        if isinstance(candidate, type) and issubclass(candidate, StrEnum):
            return [e.value for e in candidate]
    return None


def required_fields(model: type[BaseModel]) -> list[str]:
    return [name for name, field in model.model_fields.items() if field.is_required()]


LOAN_APPLICATION = to_struct_type(LoanApplication)
HISTORICAL_LOAN = to_struct_type(HistoricalLoan)
