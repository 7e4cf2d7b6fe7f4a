"""Limit/offset pagination that refuses malformed values instead of silently ignoring them."""
from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 500

    def _checked(self, request, name: str, minimum: int) -> None:
        values = request.query_params.getlist(name)
        if not values:
            return
        if len(values) > 1:
            raise ValidationError({name: [f"Give {name} once."]})
        try:
            number = int(values[0])
        except ValueError:
            raise ValidationError({name: ["A whole number is required."]}) from None
        if number < minimum:
            raise ValidationError({name: [f"Must be at least {minimum}."]})

    def paginate_queryset(self, queryset, request, view=None):
        self._checked(request, self.limit_query_param, 1)
        self._checked(request, self.offset_query_param, 0)
        return super().paginate_queryset(queryset, request, view)
