"""Typed job parameters: one frozen dataclass per kind, checked strictly, described for the API.

A kind's parameters are a dataclass deriving from :class:`JobParams` whose fields are
made with the helpers below (:func:`integer`, :func:`number`, :func:`choice`, ...).
Each helper records the type, range and help text next to the default, so the same
declaration validates a request (through the strict checks of :mod:`curation.params`:
400 naming ``params.<key>`` and the reason), fills in defaults, describes the kind for
``GET /api/v1/job-kinds/`` and ``manage.py curate --list``, and becomes the kind's
component in the OpenAPI document. Defaults of the numerical settings are read from
the ``models_gpu`` config dataclasses (see :func:`default_of`), never copied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from rest_framework import serializers

from annotation.errors import ValidationFailed
from curation import params as check

if TYPE_CHECKING:
    from annotation.models import Project
    from curation.models import Job

_META = "ballot_param"


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is typed, bounded and explained.

    ``type`` is the JSON type (integer, number, boolean, string, array, object).
    ``format`` refines it: ``model`` (a folder under ``BALLOT_MODEL_ROOTS`` or one of
    ``model_ids``) or ``date-time`` (an ISO date or datetime). ``grouped`` marks a
    parameter that the class's :meth:`JobParams.check` validates together with others
    (the annotation selection), so its rules live in one place.
    """

    type: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_maximum: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    format: str | None = None
    model_ids: tuple[str, ...] = ()
    grouped: bool = False

    def clean(self, name: str, values: Mapping[str, Any]) -> Any:
        """The checked value of ``name`` in ``values`` (400 naming ``params.<name>`` if wrong)."""
        if self.grouped:
            return values.get(name)
        if self.type in ("integer", "number"):
            return check.number(
                values,
                name,
                low=self.minimum if self.minimum is not None else float("-inf"),
                high=self.maximum if self.maximum is not None else float("inf"),
                integer=self.type == "integer",
                nullable=self.nullable,
                high_open=self.exclusive_maximum,
            )
        if self.type == "boolean":
            return check.boolean(values, name)
        if self.format == "model":
            return check.model_name(values, name, allowed_ids=self.model_ids)
        if self.type == "string" and self.choices:
            return check.choice(values, name, self.choices)
        if self.type == "string":
            return check.string(
                values,
                name,
                max_length=self.max_length or check.MAX_STRING_LENGTH,
                nullable=self.nullable,
            )
        if self.type == "array" and self.format == "integer":
            return check.integer_list(values, name)
        if self.type == "array":
            return check.string_list(values, name, options=self.choices or None)
        return values.get(name)

    def describe(self, name: str, default: Any) -> dict[str, Any]:
        return {
            "name": name,
            "type": self.type,
            "format": self.format,
            "default": default,
            "nullable": self.nullable,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "exclusive_maximum": self.exclusive_maximum,
            "choices": list(self.choices) or None,
            "help": self.help,
        }

    def serializer_field(self, default: Any) -> serializers.Field:
        """A DRF field with the same type, bounds and help, for the OpenAPI document only."""
        common: dict[str, Any] = {"help_text": self.help, "required": False, "default": default}
        if self.nullable or default is None:
            common["allow_null"] = True
        if self.type == "integer":
            return serializers.IntegerField(
                min_value=self.minimum, max_value=self.maximum, **common
            )
        if self.type == "number":
            return serializers.FloatField(min_value=self.minimum, max_value=self.maximum, **common)
        if self.type == "boolean":
            return serializers.BooleanField(**common)
        if self.type == "array":
            child = (
                serializers.ChoiceField(choices=self.choices)
                if self.choices
                else serializers.IntegerField(min_value=1)
                if self.format == "integer"
                else serializers.CharField(max_length=check.MAX_STRING_LENGTH)
            )
            return serializers.ListField(child=child, max_length=check.MAX_LIST_LENGTH, **common)
        if self.type == "object":
            return serializers.DictField(**common)
        if self.choices:
            return serializers.ChoiceField(choices=self.choices, **common)
        if self.format == "date-time":
            return serializers.CharField(**common)
        return serializers.CharField(
            max_length=self.max_length or check.MAX_STRING_LENGTH, allow_blank=True, **common
        )


def default_of(config: type, name: str) -> Any:
    """The default of field ``name`` of a dataclass (``FiFAConfig``, ``Selection``, ...)."""
    spec = next(f for f in dataclasses.fields(config) if f.name == name)
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    raise ValueError(f"{config.__name__}.{name} has no default")


def _field(default: Any, spec: ParamSpec) -> Any:
    metadata = {_META: spec}
    if isinstance(default, (list, dict)):
        # A fresh copy per instance: a shared mutable default would leak between jobs.
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def integer(
    default: int | None,
    *,
    low: int,
    high: int,
    help: str,
    nullable: bool = False,
    grouped: bool = False,
) -> Any:
    """An integer in [low, high]."""
    spec = ParamSpec("integer", help, minimum=low, maximum=high, nullable=nullable, grouped=grouped)
    return _field(default, spec)


def number(
    default: float | None,
    *,
    low: float,
    high: float,
    help: str,
    high_open: bool = False,
    nullable: bool = False,
    grouped: bool = False,
) -> Any:
    """A finite number in [low, high] (or [low, high) when ``high_open``); null when ``nullable``."""
    spec = ParamSpec(
        "number",
        help,
        minimum=low,
        maximum=high,
        exclusive_maximum=high_open,
        nullable=nullable,
        grouped=grouped,
    )
    return _field(default, spec)


def boolean(default: bool, *, help: str, grouped: bool = False) -> Any:
    return _field(default, ParamSpec("boolean", help, grouped=grouped))


def choice(default: str, options: tuple[str, ...], *, help: str, grouped: bool = False) -> Any:
    return _field(default, ParamSpec("string", help, choices=tuple(options), grouped=grouped))


def string(
    default: str | None,
    *,
    help: str,
    max_length: int = check.MAX_STRING_LENGTH,
    nullable: bool = False,
    date_time: bool = False,
    grouped: bool = False,
) -> Any:
    spec = ParamSpec(
        "string",
        help,
        max_length=max_length,
        nullable=nullable,
        format="date-time" if date_time else None,
        grouped=grouped,
    )
    return _field(default, spec)


def string_list(
    default: list[str],
    *,
    help: str,
    options: tuple[str, ...] = (),
    grouped: bool = False,
) -> Any:
    """A list of strings (the command line may give ``a,b``); duplicates dropped, order kept."""
    return _field(default, ParamSpec("array", help, choices=tuple(options), grouped=grouped))


def integer_list(default: list[int], *, help: str) -> Any:
    """A list of positive integer ids (the command line may give ``1,2,3``)."""
    return _field(default, ParamSpec("array", help, format="integer"))


def mapping(default: dict, *, help: str, grouped: bool = False) -> Any:
    return _field(default, ParamSpec("object", help, grouped=grouped))


def model(*, help: str, allowed_ids: tuple[str, ...] = ()) -> Any:
    """A model folder relative to a root in ``BALLOT_MODEL_ROOTS`` (or one of ``allowed_ids``)."""
    spec = ParamSpec("string", help, nullable=True, format="model", model_ids=allowed_ids)
    return _field(None, spec)


class JobParams:
    """Base of every kind's parameter dataclass.

    Subclasses are ``@dataclass(frozen=True)`` and declare each field with one of the
    helpers of this module; :meth:`check` may add rules that span several fields.
    """

    # Stable prefix of the kind's OpenAPI component ("Fifa" -> "FifaParams").
    title: ClassVar[str] = ""

    @classmethod
    def specs(cls) -> list[tuple[str, ParamSpec]]:
        return [(f.name, f.metadata[_META]) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
            if spec.default_factory is not dataclasses.MISSING:
                out[spec.name] = spec.default_factory()
            else:
                out[spec.name] = spec.default
        return out

    @classmethod
    def validate(cls, raw: Any, *, kind: str, project: Project) -> dict[str, Any]:
        """Check ``raw`` strictly for a job of ``kind``; return exactly this kind's params.

        Unknown keys are refused (a typo must not be silently ignored), every value is
        checked for type and range, and missing keys get their defaults, so the stored
        job says exactly what ran.
        """
        if not isinstance(raw, dict):
            raise ValidationFailed("params must be an object.", field="params")
        specs = cls.specs()
        check.reject_unknown(raw, [name for name, _ in specs], f"{kind} job")
        values = {**cls.defaults(), **raw}
        clean = {name: spec.clean(name, values) for name, spec in specs}
        cls.check(clean, project=project)
        return clean

    @classmethod
    def check(cls, values: dict[str, Any], *, project: Project) -> None:
        """Rules over several fields; raise ``ValidationFailed`` naming ``params.<key>``."""

    @classmethod
    def from_job(cls, job: Job) -> Self:
        """The typed parameters a job was stored with (defaults for keys it predates)."""
        names = {name for name, _ in cls.specs()}
        stored = {key: value for key, value in (job.params or {}).items() if key in names}
        return cls(**stored)  # type: ignore[call-arg]

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        defaults = cls.defaults()
        return [spec.describe(name, defaults[name]) for name, spec in cls.specs()]

    @classmethod
    def component_name(cls) -> str:
        return f"{cls.title or cls.__name__.removesuffix('Params')}Params"

    @classmethod
    def serializer(cls) -> type[serializers.Serializer]:
        """A DRF serializer with the same fields, so the kind has its own OpenAPI component."""
        return _serializer_for(cls)


_SERIALIZERS: dict[type, type[serializers.Serializer]] = {}


def _serializer_for(cls: type[JobParams]) -> type[serializers.Serializer]:
    # One class per params class: drf-spectacular names a component after its class,
    # and two classes with one name would be reported as a conflict.
    if cls not in _SERIALIZERS:
        defaults = cls.defaults()
        fields: dict[str, Any] = {
            name: spec.serializer_field(defaults[name]) for name, spec in cls.specs()
        }
        fields["__doc__"] = (cls.__doc__ or "").strip()
        _SERIALIZERS[cls] = type(cls.component_name(), (serializers.Serializer,), fields)
    return _SERIALIZERS[cls]
