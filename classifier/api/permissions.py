"""DRF's side of classifier.permissions: each action of a platform endpoint names the permissions it needs."""

from __future__ import annotations

from rest_framework.permissions import BasePermission


class ActionPermissions(BasePermission):
    """The view's ``action_permissions`` names the Django permissions each of its actions needs.

    An action it does not name is refused, so a new action stays closed until someone decides who may use it.
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        return needed is not None and user.has_perms(needed)
