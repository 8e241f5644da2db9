"""Turning ``Service.service_class`` (a dotted path) into a class, with clear errors."""

from __future__ import annotations

import importlib

from django.core.exceptions import ValidationError

from project.queue_system.base_service import BaseQueueService


class ServiceClassError(ValueError):
    pass


def load_service_class(dotted_path: str) -> type[BaseQueueService]:
    path = (dotted_path or "").strip()
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ServiceClassError(f"'{path}' is not a dotted path like 'package.module.ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ServiceClassError(f"module '{module_name}' cannot be imported: {exc}") from exc
    except Exception as exc:  # a syntax or import error inside the module itself
        raise ServiceClassError(f"module '{module_name}' fails to import: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ServiceClassError(f"module '{module_name}' has no attribute '{class_name}'")
    if not isinstance(cls, type) or not issubclass(cls, BaseQueueService):
        raise ServiceClassError(f"'{path}' is not a subclass of project.queue_system.base_service.BaseQueueService")
    return cls


def validate_service_class(value: str) -> None:
    try:
        load_service_class(value)
    except ServiceClassError as exc:
        raise ValidationError(str(exc), code="invalid_service_class") from exc
